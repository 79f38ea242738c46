"""The DAG's plan task as plain functions: variables, the stack's names, the conf, the files."""

from __future__ import annotations

import json
import time

import pytest

from m7etl.exceptions import ConfigurationError, UsageError
from m7etl.orchestration.payloads import RawToSilverRequest
from m7etl.orchestration.plan import (
    PipelineSettings,
    RunConf,
    parse_conf,
    pending_keys,
    plan_files,
    raw_to_silver_payloads,
    read_environment,
    read_settings,
    stack_names,
    topic_arn,
    window_days,
)
from m7etl.storage.base import ObjectInfo

SET_HINT = "Set it in Admin > Variables or with `m7etl set-variables`."


def variables(**values):
    return lambda name: values.get(name)


# -- variables --------------------------------------------------------------------------
def test_the_guides_defaults_apply_to_all_but_environment():
    assert read_settings(variables(environment="test")) == PipelineSettings("test", 3, 5.0, 10.0)


def test_variables_are_read_from_their_text():
    got = read_settings(variables(environment="prod", max_days_back="7", error_threshold="2.5",
                                  warning_threshold=" 12 "))
    assert got == PipelineSettings("prod", 7, 2.5, 12.0)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("max_days_back", "three",
     "Airflow variable 'max_days_back' is 'three': not a whole number. Use an integer from 1 to "
     f"365. {SET_HINT}"),
    ("max_days_back", "2.5",
     "Airflow variable 'max_days_back' is '2.5': not a whole number. Use an integer from 1 to "
     f"365. {SET_HINT}"),
    ("max_days_back", "0",
     f"Airflow variable 'max_days_back' is '0': out of range 1-365. Use an integer from 1 to 365. "
     f"{SET_HINT}"),
    ("max_days_back", "400",
     "Airflow variable 'max_days_back' is '400': out of range 1-365. Use an integer from 1 to "
     f"365. {SET_HINT}"),
    ("error_threshold", "5%",
     f"Airflow variable 'error_threshold' is '5%': not a number. Use a percentage such as 5.0. "
     f"{SET_HINT}"),
    ("error_threshold", "nan",
     "Airflow variable 'error_threshold' is 'nan': not a percentage from 0 to 100. Use 0 to 100. "
     f"{SET_HINT}"),
    ("warning_threshold", "101",
     "Airflow variable 'warning_threshold' is '101': not a percentage from 0 to 100. Use 0 to "
     f"100. {SET_HINT}"),
])
def test_a_bad_variable_names_the_variable_and_the_value(name, value, message):
    with pytest.raises(ConfigurationError) as err:
        read_settings(variables(environment="test", **{name: value}))
    assert str(err.value) == message
    assert err.value.retryable is False


def test_warning_below_error_is_refused_naming_both():
    with pytest.raises(ConfigurationError) as err:
        read_settings(variables(environment="test", error_threshold="8", warning_threshold="6"))
    assert str(err.value) == ("Airflow variable 'warning_threshold' (6.0) is below "
                              "'error_threshold' (8.0). Use a warning threshold at or above the "
                              f"error threshold. {SET_HINT}")


def test_environment_must_be_set():
    with pytest.raises(ConfigurationError) as err:
        read_environment(variables())
    assert str(err.value) == (
        "Airflow variable 'environment' is not set: the DAG cannot name the stack's functions, "
        f"job and bucket. Set it to the stack's Environment parameter, e.g. test. {SET_HINT}")


def test_environment_must_be_a_stack_environment_name():
    with pytest.raises(ConfigurationError, match=r"'environment' is 'Prod_1': not an environment"):
        read_environment(variables(environment="Prod_1"))


def test_environment_may_come_from_the_m7etl_config_section_and_must_agree_with_it():
    assert read_environment(variables(), {"environment": "prod"}) == "prod"
    assert read_environment(variables(environment="prod"), {"environment": "prod"}) == "prod"
    with pytest.raises(ConfigurationError) as err:
        read_environment(variables(environment="test"), {"environment": "prod"})
    assert str(err.value) == ("Airflow variable 'environment' is 'test' but this MWAA environment "
                              "is configured for 'prod' (m7etl.environment). Set the variable to "
                              "the environment this Airflow belongs to.")


# -- names ------------------------------------------------------------------------------
def test_names_follow_the_templates_patterns():
    names = stack_names("test")
    assert names.to_dict() == {
        "environment": "test", "data_bucket": "m7-etl-data-solocco-test",
        "raw_to_silver_function": "m7-etl-raw-to-silver-test",
        "silver_to_gold_function": "m7-etl-silver-to-gold-test",
        "glue_job": "m7-etl-gold-to-snowflake-test", "alert_topic_arn": None}
    assert names.alert_topic_name == "m7-etl-alerts-test"


def test_a_configured_name_replaces_the_pattern_and_blank_ones_do_not():
    names = stack_names("prod", {"data_bucket": "acme-data", "glue_job": "  ",
                                 "alert_topic_arn": "arn:aws:sns:eu-west-1:111122223333:ops"})
    assert (names.data_bucket, names.glue_job, names.alert_topic_arn) == (
        "acme-data", "m7-etl-gold-to-snowflake-prod", "arn:aws:sns:eu-west-1:111122223333:ops")
    assert stack_names("prod").from_dict(names.to_dict()) == names


def test_topic_arn():
    assert topic_arn("aws", "eu-west-1", "123456789012", "m7-etl-alerts-test") == \
        "arn:aws:sns:eu-west-1:123456789012:m7-etl-alerts-test"


# -- conf -------------------------------------------------------------------------------
def test_no_conf_is_the_daily_run():
    assert parse_conf(None) == RunConf() and parse_conf({}) == RunConf()
    assert not RunConf().replay


def test_the_s3_event_conf_is_read():
    conf = parse_conf({"date": "20250501", "trigger": "s3_event",
                       "raw_keys": ["raw/20250501/EPG_20250501.csv", "raw/20250501/Device_20250501.csv"]})
    assert conf == RunConf("20250501", ("raw/20250501/Device_20250501.csv",
                                        "raw/20250501/EPG_20250501.csv"), "s3_event")
    assert not conf.replay


def test_a_date_without_raw_keys_is_a_replay():
    assert parse_conf({"date": "20250501", "raw_keys": [], "trigger": "cli"}).replay


@pytest.mark.parametrize(("conf", "message"), [
    ({"date": "20250501", "raw_key": []},
     "DAG run conf: field 'raw_key' is not a known field (allowed: date, raw_keys, trigger)."),
    ({"date": "2025-05-01"},
     "DAG run conf: field 'date' must be a YYYYMMDD date ('2025-05-01' is not a date in YYYYMMDD "
     "form)."),
    ({"date": "20250231"},
     "DAG run conf: field 'date' must be a YYYYMMDD date ('20250231' is not a real calendar date)."),
    ({"date": "20250501", "raw_keys": "raw/20250501/a.csv"},
     "DAG run conf: field 'raw_keys' must be a list of raw/YYYYMMDD/<file> keys."),
    ({"date": "20250501", "raw_keys": ["landing/a.csv"]},
     "DAG run conf: field 'raw_keys' holds 'landing/a.csv', not a raw/YYYYMMDD/<file> key."),
    ({"date": "20250501", "raw_keys": ["raw/20250502/a.csv"]},
     "DAG run conf: field 'raw_keys' holds 'raw/20250502/a.csv', which is not under raw/20250501/."),
    ({"raw_keys": ["raw/20250502/a.csv"]},
     "DAG run conf: field 'date' is missing (raw_keys needs the day they belong to)."),
])
def test_a_bad_conf_names_the_field(conf, message):
    with pytest.raises(UsageError) as err:
        parse_conf(conf)
    assert err.value.message == message


# -- days and pending files -------------------------------------------------------------
def test_the_window_is_the_day_and_max_days_back_days_before_it():
    assert window_days("20250501", 3) == ["20250428", "20250429", "20250430", "20250501"]
    assert window_days("20240301", 1) == ["20240229", "20240301"]  # a leap year


def obj(key: str, when: float) -> ObjectInfo:
    return ObjectInfo(key, 10, when)


def test_pending_means_no_report_or_a_report_older_than_the_raw_object():
    raw = [obj("raw/20250501/Device_20250501.csv", 100),   # report newer: done
           obj("raw/20250501/EPG_20250501.csv", 100),      # report older: re-uploaded
           obj("raw/20250501/Channel_20250501.csv", 100),  # no report
           obj("raw/20250501/Viewing_20250501.csv.gz", 100),  # its report is the .gz stem's
           obj("raw/20250501/notes.txt", 100)]             # not an input file
    reports = [obj("silver/20250501/_reports/Device/Device_20250501.json", 150),
               obj("silver/20250501/_reports/EPG/EPG_20250501.json", 50),
               obj("silver/20250501/_reports/Viewing/Viewing_20250501.gz.json", 150),
               obj("silver/20250501/_reports/Channel/Channel_20250430.json", 150)]
    assert pending_keys(raw, reports) == ["raw/20250501/Channel_20250501.csv",
                                          "raw/20250501/EPG_20250501.csv"]


class Bucket:
    """A listing by prefix over fixed objects (what a storage's ``list`` answers)."""

    def __init__(self, *objects: ObjectInfo):
        self.objects = objects
        self.listed: list[str] = []

    def list(self, prefix: str) -> list[ObjectInfo]:
        self.listed.append(prefix)
        return [o for o in self.objects if o.key.startswith(prefix)]


BUCKET = Bucket(
    obj("raw/20250427/Device_20250427.csv", 10),                    # outside the window
    obj("raw/20250429/Device_20250429.csv", 10),                    # pending
    obj("raw/20250501/Device_20250501.csv", 10),                    # done
    obj("silver/20250501/_reports/Device/Device_20250501.json", 20),
    obj("raw/20250501/EPG_20250501.csv", 30),                       # re-uploaded: pending
    obj("silver/20250501/_reports/EPG/EPG_20250501.json", 20),
    obj("raw/20240101/Device_20240101.csv", 10),                    # an old day, done
    obj("silver/20240101/_reports/Device/Device_20240101.json", 20),
    obj("raw/20240101/EPG_20240101.csv", 10),                       # an old day, pending
)


def test_the_daily_run_takes_what_is_pending_in_the_window():
    plan = plan_files(RunConf(), "20250501", 3, Bucket(*BUCKET.objects).list)
    assert plan.days == ["20250428", "20250429", "20250430", "20250501"]
    assert plan.keys == ["raw/20250429/Device_20250429.csv", "raw/20250501/EPG_20250501.csv"]
    assert (plan.replay_day, plan.already_done, plan.missing) == (None, [], [])


def test_a_conf_day_outside_the_window_is_planned_too_and_done_files_are_reported():
    conf = RunConf("20240101", ("raw/20240101/Device_20240101.csv", "raw/20240101/EPG_20240101.csv",
                                "raw/20240101/Gone_20240101.csv"), "s3_event")
    plan = plan_files(conf, "20250501", 3, BUCKET.list)
    assert plan.days[0] == "20240101"
    assert plan.keys == ["raw/20240101/EPG_20240101.csv", "raw/20250429/Device_20250429.csv",
                         "raw/20250501/EPG_20250501.csv"]
    assert plan.already_done == ["raw/20240101/Device_20240101.csv"]
    assert plan.missing == ["raw/20240101/Gone_20240101.csv"]
    assert plan.summary() == (
        "3 raw file(s) to process over 20240101, 20250428, 20250429, 20250430, 20250501; 1 asked "
        "for were already processed; 1 asked for are no longer in raw/: raw/20240101/Gone_20240101.csv")


def test_a_replay_takes_the_whole_day_done_or_not():
    plan = plan_files(RunConf("20240101", (), "cli"), "20250501", 1, BUCKET.list)
    assert plan.replay_day == "20240101"
    assert plan.keys == ["raw/20240101/Device_20240101.csv", "raw/20240101/EPG_20240101.csv",
                         "raw/20250501/EPG_20250501.csv"]


def test_planning_over_a_real_bucket(s3_storage):
    """The same rule against S3's own LastModified (moto, one-second resolution: hence the
    pauses): a raw object newer than its report is pending, an older one is not."""
    s3_storage.write_bytes("silver/20250501/_reports/Device/Device_20250501.json", b"{}")
    time.sleep(1.1)
    s3_storage.write_bytes("raw/20250501/Device_20250501.csv", b"a\n1\n")  # re-uploaded
    s3_storage.write_bytes("raw/20250501/EPG_20250501.csv", b"a\n1\n")
    time.sleep(1.1)
    s3_storage.write_bytes("silver/20250501/_reports/EPG/EPG_20250501.json", b"{}")  # processed
    plan = plan_files(RunConf(), "20250501", 1, s3_storage.list)
    assert plan.keys == ["raw/20250501/Device_20250501.csv"]


def test_payloads_are_what_the_function_parses():
    settings = PipelineSettings("test", 3, 2.0, 9.0)
    payloads = raw_to_silver_payloads(["raw/20250501/Device_20250501.csv"], "bkt", settings)
    assert [RawToSilverRequest.parse(json.loads(p)) for p in payloads] == [
        RawToSilverRequest("raw/20250501/Device_20250501.csv", "bkt", 2.0, 9.0)]
