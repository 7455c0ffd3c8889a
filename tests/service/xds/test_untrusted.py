"""What a proxy sends, fitted to a column or a log line, and the log budget: pure functions."""
from service.xds.untrusted import LogBudget, has_control_characters, logged, stored


def test_stored_replaces_control_characters_and_cuts_to_the_column():
    assert stored("a\x00b\x7fc\x9fd", 10) == "a\ufffdb\ufffdc\ufffdd"
    assert stored("line\none\tx", 20) == "line\ufffdone\ufffdx"
    assert stored("line\none\tx\r\x00", 20, multiline=True) == "line\none\tx\r\ufffd"
    assert stored("x" * 300, 255) == "x" * 254 + "\u2026" and len(stored("x" * 300, 255)) == 255
    assert stored("é" * 255, 255) == "é" * 255  # a column's length counts characters, not bytes


def test_logged_is_one_bounded_line():
    assert logged("ok") == "ok"
    assert logged("a\nb\x00c") == "a\\nb\\x00c"
    long = logged("z" * 1000 + "\n", 10)
    assert long == "z" * 10 + "\u2026 (991 more characters)"


def test_control_characters_are_found():
    assert has_control_characters("a\x00") and has_control_characters("a\n") and not has_control_characters("añ-b")


def test_a_log_budget_lets_so_many_lines_per_interval_and_tells_how_many_it_left_out():
    now = [0.0]
    budget = LogBudget(2, 60.0, clock=lambda: now[0])
    assert [budget.take() for _ in range(5)] == [0, 0, None, None, None]
    now[0] = 59.9
    assert budget.take() is None
    now[0] = 60.0
    assert budget.take() == 4  # the first line of the next interval tells of the four left out
    assert budget.take() == 0 and budget.take() is None
