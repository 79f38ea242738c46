"""The moto server of the local stack, taught what it lacks to run the real pipeline.

``cfn_models`` (CloudFormation models for the template's resource types moto cannot create),
``executors`` (Lambda and Glue code really run, S3 notifications delivered) and ``server``
(the process ``make local-up`` starts). Only the moto server's process imports them: the
pipeline itself never does. See docs/local.md.
"""
