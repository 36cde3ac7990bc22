"""Token streaming: run a generation in a thread and yield text pieces as they are decoded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from omnifuse.generation.decode import GenerationOutput


class TextStream:
    """Iterate it for text pieces; `.output` holds the full :class:`GenerationOutput` afterwards.

    Text that could be the start of a stop string is held back until it is known not to be,
    so a client never receives text past a stop string.
    """

    def __init__(self, pieces: Iterator[str], thread: threading.Thread, state: dict, stops: Sequence[str]):
        self._pieces = pieces
        self._thread = thread
        self._state = state
        self._stops = list(stops)
        self.output: GenerationOutput | None = None

    def __iter__(self) -> Iterator[str]:
        hold = max((len(s) for s in self._stops), default=1) - 1
        text, sent = "", 0
        stopped = False
        for piece in self._pieces:
            if stopped:
                continue  # drain the streamer so the generating thread can finish
            text += piece
            cut = min((text.find(s) for s in self._stops if s in text), default=-1)
            if cut != -1:
                if cut > sent:
                    yield text[sent:cut]
                sent, stopped = cut, True
                continue
            safe = len(text) - hold
            if safe > sent:
                yield text[sent:safe]
                sent = safe
        self._thread.join()
        if "error" in self._state:
            raise self._state["error"]
        if not stopped and len(text) > sent:
            yield text[sent:]
        self.output = self._state.get("output")


def stream_generate(
    run: Callable[[object], GenerationOutput],
    tokenizer,
    stops: Sequence[str] = (),
    timeout: float | None = 300.0,
) -> TextStream:
    """Call `run(streamer)` in a thread (it passes the streamer to HF `generate`).

    The returned :class:`TextStream` yields the decoded new text piece by piece; an exception
    raised by `run` is raised again at the end of the iteration.
    """
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout)
    state: dict = {}

    def target() -> None:
        try:
            state["output"] = run(streamer)
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer's thread
            state["error"] = err
            streamer.end()

    thread = threading.Thread(target=target, name="omnifuse-generate", daemon=True)
    thread.start()
    return TextStream(iter(streamer), thread, state, stops)
