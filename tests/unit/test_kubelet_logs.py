"""Log query semantics over CRI log files (kubelet /containerLogs): tail, since,
timestamps, limitBytes, partial-line reassembly, rotation, previous."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinnace.kubelet import crilog
from pinnace.kubelet.server import (
    Assembler,
    LogOptions,
    LogOptionsError,
    parse_time_ns,
    read_logs,
    rfc3339nano,
    rotated,
    tail_start,
)

T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z


def write(path: Path, *entries: tuple[int, str, str, bytes]) -> Path:
    """Raw CRI lines: (seconds after T0, stream, tag, content)."""
    with open(path, "ab") as f:
        for secs, stream, tag, content in entries:
            f.write(b"%s %s %s %s\n" % (crilog.timestamp(T0 + secs * 1_000_000_000).encode(), stream.encode(),
                                        tag.encode(), content))
    return path


def logs(path: Path, **query: str) -> str:
    return read_logs(path, LogOptions.from_query(query, now_ns=T0 + 100 * 1_000_000_000)).decode()


@pytest.fixture
def five(tmp_path) -> Path:
    return write(tmp_path / "0.log", *[(i, "stdout", "F", f"line {i}".encode()) for i in range(5)])


def test_all_lines(five):
    assert logs(five) == "".join(f"line {i}\n" for i in range(5))


def test_missing_file_is_empty(tmp_path):
    assert logs(tmp_path / "none.log") == ""
    assert logs(tmp_path / "none.log", tailLines="3") == ""


@pytest.mark.parametrize(("n", "expect"), [(0, []), (1, [4]), (3, [2, 3, 4]), (5, list(range(5))),
                                           (50, list(range(5)))])
def test_tail_lines(five, n, expect):
    assert logs(five, tailLines=str(n)) == "".join(f"line {i}\n" for i in expect)


def test_tail_counts_reassembled_lines_and_an_unfinished_last_one(tmp_path):
    path = write(tmp_path / "0.log",
                 (0, "stdout", "F", b"one"),
                 (1, "stdout", "P", b"tw"), (1, "stdout", "P", b"o-"), (2, "stdout", "F", b"two"),
                 (3, "stdout", "F", b"three"),
                 (4, "stdout", "P", b"unfinished"))
    assert logs(path, tailLines="1") == "unfinished"
    assert logs(path, tailLines="3") == "tw" "o-two\nthree\nunfinished"


def test_tail_over_many_blocks(tmp_path):
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(crilog.encode("stdout", b"x" * 100 + f" {i}\n".encode(), T0 + i)
                              for i in range(3000)))
    offset, found = tail_start(path, 2)
    assert found == 2 and offset > 0
    assert logs(path, tailLines="2") == "x" * 100 + " 2998\n" + "x" * 100 + " 2999\n"


def test_partial_lines_reassembled_per_stream(tmp_path):
    path = write(tmp_path / "0.log",
                 (0, "stdout", "P", b"hello "),
                 (0, "stderr", "F", b"an error"),
                 (1, "stdout", "F", b"world"))
    assert logs(path) == "an error\nhello world\n"
    assert logs(path, stream="Stdout") == "hello world\n"
    assert logs(path, stream="Stderr") == "an error\n"


def test_long_line_split_by_the_writer_comes_back_whole(tmp_path):
    long = b"y" * (crilog.MAX_LINE * 2 + 10) + b"\n"
    path = tmp_path / "0.log"
    path.write_bytes(crilog.encode("stdout", long))
    assert path.read_bytes().count(b" P ") == 2
    assert logs(path).encode() == long


def test_timestamps_rfc3339nano(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(crilog.encode("stdout", b"a\n", T0 + 120_000_000) + crilog.encode("stdout", b"b\n", T0))
    assert logs(path, timestamps="true") == "2023-11-14T22:13:20.12Z a\n2023-11-14T22:13:20Z b\n"


def test_rfc3339nano_and_parse_round_trip():
    for ns in (T0, T0 + 1, T0 + 123_456_789, T0 + 500_000_000):
        assert parse_time_ns(rfc3339nano(ns)) == ns
    assert parse_time_ns("2023-11-14T23:13:20+01:00") == T0
    assert parse_time_ns("2023-11-14T22:13:20.5Z") == T0 + 500_000_000
    with pytest.raises(ValueError):
        parse_time_ns("yesterday")


def test_since_seconds_and_since_time(five):
    # "now" is T0+100s: sinceSeconds=97 keeps lines from T0+3s on.
    assert logs(five, sinceSeconds="97") == "line 3\nline 4\n"
    assert logs(five, sinceTime=rfc3339nano(T0 + 2 * 1_000_000_000)) == "line 2\nline 3\nline 4\n"
    # tail first, then since (as the kubelet does)
    assert logs(five, tailLines="3", sinceSeconds="98") == "line 2\nline 3\nline 4\n"
    assert logs(five, tailLines="1", sinceSeconds="99") == "line 4\n"


def test_limit_bytes_cuts_mid_line(five):
    assert logs(five, limitBytes="10") == "line 0\nlin"
    assert logs(five, limitBytes="7", timestamps="true") == "2023-11"


def test_rotated_generation_is_read_first(tmp_path):
    current = tmp_path / "0.log"
    write(rotated(current), (0, "stdout", "F", b"old 1"), (1, "stdout", "F", b"old 2"))
    write(current, (2, "stdout", "F", b"new 1"))
    assert logs(current) == "old 1\nold 2\nnew 1\n"
    assert logs(current, tailLines="2") == "old 2\nnew 1\n"
    assert logs(current, tailLines="1") == "new 1\n"


def test_garbled_lines_are_skipped(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(b"not a cri line\n" + crilog.encode("stdout", b"fine\n", T0) + b"2023 stdout X what\n")
    assert logs(path) == "fine\n"


@pytest.mark.parametrize(("query", "message"), [
    ({"tailLines": "-1"}, "tailLines: Invalid value: -1"),
    ({"limitBytes": "0"}, "limitBytes: Invalid value: 0"),
    ({"sinceSeconds": "x"}, "sinceSeconds: Invalid value"),
    ({"sinceSeconds": "5", "sinceTime": "2023-11-14T22:13:20Z"}, "at most one of"),
    ({"sinceTime": "noon"}, "sinceTime"),
    ({"stream": "Both"}, "stream: Unsupported value"),
])
def test_invalid_options(query, message):
    with pytest.raises(LogOptionsError, match=message):
        LogOptions.from_query(query)


def test_flags():
    opts = LogOptions.from_query({"follow": "true", "previous": "1", "timestamps": "false"})
    assert (opts.follow, opts.previous, opts.timestamps) == (True, True, False)


def test_assembler_flush_returns_unfinished_lines():
    a = Assembler()
    assert a.feed(crilog.Entry("t1", "stdout", True, b"par")) is None
    assert a.feed(crilog.Entry("t2", "stdout", True, b"tial")) is None
    [line] = a.flush()
    assert (line.time, line.content) == ("t1", b"partial")
    assert a.flush() == []


async def test_previous_instance_comes_from_the_log_source(tmp_path):
    """``previous`` is the log source's business: the server asks for the previous file."""
    from pinnace.kubelet.server import KubeletServer

    asked: list[bool] = []

    def source(ns: str, pod: str, container: str, previous: bool) -> Path | None:
        asked.append(previous)
        return None

    server = KubeletServer(source, cert="c", key="k", client_ca="ca")
    from aiohttp.test_utils import make_mocked_request

    for previous, message in ((True, 'previous terminated container "c" in pod "p" not found'),
                              (False, 'container "c" in pod "p" is not available')):
        req = make_mocked_request("GET", f"/containerLogs/ns/p/c?previous={str(previous).lower()}",
                                  match_info={"namespace": "ns", "pod": "p", "container": "c"})
        resp = await server._container_logs(req)
        assert resp.status == 404 and resp.text == message
    assert asked == [True, False]
