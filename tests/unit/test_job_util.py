"""Pure helpers of the Job controller: completion-index intervals, pod failure policy
matching, failure back-off."""

from __future__ import annotations

import datetime as dt

import pytest

from pinnace.controllers import job_util as ju


@pytest.mark.parametrize(("text", "completions", "want"), [
    ("", 5, []),
    ("0-2,5", 10, [(0, 2), (5, 5)]),
    ("0,1,2,5", 10, [(0, 2), (5, 5)]),
    ("3-9", 6, [(3, 5)]),  # clipped to completions
    ("7,8", 5, []),
    ("1,x,2", 5, [(1, 2)]),  # corrupt pieces are skipped
])
def test_parse_indexes(text, completions, want):
    assert ju.parse_indexes(text, completions) == want


@pytest.mark.parametrize(("intervals", "text"), [
    ([], ""), ([(0, 4)], "0-4"), ([(0, 1)], "0,1"), ([(0, 0), (2, 4), (7, 8)], "0,2-4,7,8"),
])
def test_format_indexes(intervals, text):
    assert ju.format_indexes(intervals) == text


def test_merge_and_count_indexes():
    merged = ju.merge_indexes([(0, 1), (5, 5)], [2, 4, 9, 4])
    assert merged == [(0, 2), (4, 5), (9, 9)]
    assert ju.total_indexes(merged) == 6
    assert ju.has_index(merged, 4) and not ju.has_index(merged, 3)


def test_first_pending_indexes():
    assert ju.first_pending_indexes(3, 5, []) == [0, 1, 2]
    assert ju.first_pending_indexes(3, 8, [(0, 1), (3, 3)]) == [2, 4, 5]
    assert ju.first_pending_indexes(5, 4, [(1, 2)]) == [0, 3]
    assert ju.first_pending_indexes(2, 3, [(0, 2)]) == []


def failed_pod(code: int = 1, conditions: list[dict] | None = None, container: str = "c") -> dict:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions or [],
                       "containerStatuses": [{"name": container, "state": {"terminated": {"exitCode": code}}}]}}


def test_pod_failure_policy_matching():
    policy = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0, 3]}},
    ]}
    disrupted = failed_pod(137, [{"type": "DisruptionTarget", "status": "True"}])
    assert ju.match_pod_failure_policy(policy, disrupted) == (None, False, "Ignore")
    msg, counts, action = ju.match_pod_failure_policy(policy, failed_pod(42, container="main"))
    assert (counts, action) == (True, "FailJob")
    assert msg == "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
    # containerName must match; otherwise the NotIn rule counts it.
    assert ju.match_pod_failure_policy(policy, failed_pod(42, container="side")) == (None, True, "Count")
    # NotIn excludes 3: no rule matches, the default is to count.
    assert ju.match_pod_failure_policy(policy, failed_pod(3)) == (None, True, None)
    assert ju.match_pod_failure_policy(None, failed_pod(1)) == (None, True, None)
    # A False condition does not match a pattern asking for True.
    assert ju.match_pod_failure_policy(policy, failed_pod(3, [{"type": "DisruptionTarget", "status": "False"}])
                                       ) == (None, True, None)


def test_pod_failure_policy_condition_fail_job():
    policy = {"rules": [{"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue"}]}]}
    msg, counts, action = ju.match_pod_failure_policy(policy, failed_pod(1, [{"type": "ConfigIssue",
                                                                              "status": "True"}]))
    assert msg == "Pod ns/p has condition ConfigIssue matching FailJob rule at index 0" and action == "FailJob"


def test_is_pod_failed_respects_replacement_policy():
    deleting = {"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Running"}}
    assert ju.is_pod_failed(deleting, {"spec": {}})
    assert not ju.is_pod_failed(deleting, {"spec": {"podReplacementPolicy": "Failed"}})
    assert not ju.is_pod_failed(deleting, {"spec": {"podFailurePolicy": {"rules": []}}})
    assert ju.is_pod_failed({"status": {"phase": "Failed"}}, {"spec": {"podReplacementPolicy": "Failed"}})


def test_backoff_doubles_and_caps():
    assert [ju.backoff_delay(n, 10, 360) for n in range(0, 8)] == [0, 10, 20, 40, 80, 160, 320, 360]
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert ju.remaining_backoff(2, t0, t0 + dt.timedelta(seconds=5), 10, 360) == 15
    assert ju.remaining_backoff(1, t0, t0 + dt.timedelta(seconds=11), 10, 360) == 0


def _finished_at(sec: int, phase: str) -> dict:
    return {"status": {"phase": phase, "containerStatuses": [
        {"state": {"terminated": {"finishedAt": f"2024-01-01T00:00:{sec:02d}Z"}}}]}}


def test_backoff_record_resets_on_success():
    rec = ju.next_backoff_record(ju.BackoffRecord(), [], [_finished_at(1, "Failed"), _finished_at(3, "Failed")])
    assert rec.failures_after_last_success == 2 and rec.last_failure_time.second == 3
    # A success after them resets the streak; a failure after the success still counts.
    rec2 = ju.next_backoff_record(rec, [_finished_at(5, "Succeeded")], [_finished_at(7, "Failed")])
    assert rec2.failures_after_last_success == 1 and rec2.last_failure_time.second == 7
    assert ju.next_backoff_record(rec, [_finished_at(5, "Succeeded")], []) == ju.BackoffRecord()


def test_conditions_and_names():
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    conds: list[dict] = []
    assert not ju.ensure_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", now)
    assert conds == []  # a False condition is never added
    assert ju.ensure_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended", now)
    assert not ju.ensure_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended", now)
    assert ju.ensure_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", now)
    assert conds[0]["status"] == "False" and conds[0]["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    assert ju.generate_name_with_index("pi", 3) == "pi-3-"
    assert len(ju.generate_name_with_index("x" * 70, 12)) <= ju.MAX_GENERATE_NAME_PREFIX
    spec = {"containers": [{"name": "a"}, {"name": "b", "env": [{"name": "JOB_COMPLETION_INDEX", "value": "9"}]}]}
    ju.add_completion_index_env(spec)
    assert spec["containers"][0]["env"] == [ju.completion_index_env()]
    assert spec["containers"][1]["env"] == [{"name": "JOB_COMPLETION_INDEX", "value": "9"}]
