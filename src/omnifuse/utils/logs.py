"""Console logging of the command line: omnifuse's INFO lines, third-party WARNING and above.

Some libraries log chatty INFO through the root logger (ONNX Runtime's quantizer prints one line
per tensor). `configure_cli_logging(verbose=False)` keeps their INFO and DEBUG out of the console;
`omnifuse --verbose ...` shows everything.
"""

from __future__ import annotations

import logging


class OwnInfoOnly(logging.Filter):
    """Pass omnifuse's records at any level and everyone else's at WARNING and above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] in ("omnifuse", "__main__")


def configure_cli_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, OwnInfoOnly) for f in handler.filters):
                handler.addFilter(OwnInfoOnly())
