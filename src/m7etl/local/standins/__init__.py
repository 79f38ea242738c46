"""Local stand-ins for the AWS services moto cannot run here (Lambda code, Glue, MWAA).

Each is a small HTTP server on 127.0.0.1 speaking the service's real botocore protocol, so
unmodified boto3 clients and Airflow's Amazon provider operators reach it through an
endpoint setting. docs/local.md says what each models and what it does not.
"""
