"""`omnifuse serve` and `omnifuse index build` as commands; graceful shutdown on SIGTERM."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx

from omnifuse.cli.main import main


def test_sigterm_finishes_in_flight_requests_and_exits_0(subprocess_server, serve_model_dir):
    # a long batching window keeps the requests in flight (queued) when SIGTERM arrives
    server = subprocess_server(serve_model_dir, "--max-wait-ms", "1500", "--max-batch", "64")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [
            pool.submit(httpx.post, f"{server.url}/v1/embed", json={"texts": [f"text {i}"]}, timeout=30)
            for i in range(6)
        ]
        time.sleep(0.6)
        assert not any(f.done() for f in futures)
        server.proc.send_signal(signal.SIGTERM)
        codes = [f.result().status_code for f in futures]
    assert codes == [200] * 6
    assert server.proc.wait(30) == 0
    try:
        httpx.get(f"{server.url}/healthz", timeout=2)
        raise AssertionError("the server still answers after SIGTERM")
    except httpx.HTTPError:
        pass


def test_index_build_cli_and_serve_refusals(serve_model_dir, other_model_dir, shapes_dir, tmp_path, capsys):
    out = tmp_path / "ix"
    assert (
        main(
            [
                "index",
                "build",
                str(serve_model_dir),
                str(shapes_dir / "test.jsonl"),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "12 image items, kind flat" in capsys.readouterr().out
    assert (
        main(
            [
                "index",
                "build",
                str(serve_model_dir),
                str(shapes_dir / "val.jsonl"),
                "--out",
                str(out),
                "--append",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "24 image items" in capsys.readouterr().out
    assert (
        main(
            [
                "index",
                "build",
                str(other_model_dir),
                str(shapes_dir / "val.jsonl"),
                "--out",
                str(out),
                "--append",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "built with a different model" in capsys.readouterr().err
    assert main(["serve", str(serve_model_dir), "--host", "0.0.0.0"]) == 2
    assert "refusing to bind 0.0.0.0 without an API key" in capsys.readouterr().err
    assert main(["serve", str(serve_model_dir), "--index", str(tmp_path / "missing")]) == 2
    assert "index directory not found" in capsys.readouterr().err
    key_file = tmp_path / "key.txt"
    key_file.write_text("")
    assert main(["serve", str(serve_model_dir), "--api-key-file", str(key_file)]) == 2
    assert "is empty" in capsys.readouterr().err


def test_serve_refuses_an_index_of_another_model(serve_model_dir, other_model_dir, shapes_index, capsys):
    assert main(["serve", str(other_model_dir), "--index", str(shapes_index), "--port", "0"]) == 2
    assert "built with a different model" in capsys.readouterr().err
