"""In a non-TTY a progress bar writes a line now and then, never one carriage-return line per step."""

import io

from omnifuse.utils.progress import progress_bar


def test_log_file_gets_periodic_lines():
    out = io.StringIO()
    bar = progress_bar(total=500, desc="train", file=out, interval_s=3600)
    for _ in range(500):
        bar.update(1)
        bar.set_postfix(loss="1.0")
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3, lines  # the start and the end, nothing per step
    assert lines[-1].startswith("train: 500/500")


def test_every_interval_gives_a_line():
    out = io.StringIO()
    for _ in progress_bar(range(5), desc="predict", file=out, interval_s=0):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) >= 5 and all(line.startswith("predict: ") for line in lines)
