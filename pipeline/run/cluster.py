"""What a command does on a Dask cluster it starts or joins: show where its dashboard is, and
record Dask's performance report of the run when asked (``--performance-report FILE.html``).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

from ..errors import PipelineError


def dashboard_address(client) -> str | None:
    """The cluster's dashboard URL, or None when it has none (``bokeh`` not installed)."""
    try:
        info = client.scheduler_info()
        if "dashboard" not in (info.get("services") or {}):
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a missing dashboard never stops a command
        return None


@contextmanager
def cluster_session(client, *, quiet: bool = False, performance_report: str | None = None):
    """Print the dashboard's address on stderr (not when ``quiet``) and, with
    ``performance_report``, write ``distributed.performance_report`` of what runs inside."""
    if not quiet:
        link = dashboard_address(client)
        print(f"dask dashboard: {link}" if link else
              "dask dashboard: none (install bokeh>=3.1 for it)", file=sys.stderr)
    if not performance_report:
        yield
        return
    from distributed import performance_report as report

    try:
        with report(filename=str(performance_report)):
            yield
    except ImportError as exc:  # bokeh, which the report draws with
        raise PipelineError(f"--performance-report needs bokeh>=3.1 ({exc})") from None


class _CtrlCRace(logging.Filter):
    """Drops the one log record of a race in ``distributed.utils.sync``: a Ctrl-C that lands
    before the call's coroutine has started schedules a ``cancel`` that reads the unset
    ``future`` (a ``NameError``), which tornado logs as "Exception in callback" next to the
    command's one ``error: interrupted`` line. Nothing else is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, NameError) and "'future'" in str(exc)
                    and "sync.<locals>.cancel" in record.getMessage())


def drop_ctrl_c_race_log() -> None:
    """Install :class:`_CtrlCRace` on tornado's callback logger, once per process, before
    any client is made (the callback may run after the command's cluster block has ended)."""
    logger = logging.getLogger("tornado.application")
    if not any(isinstance(f, _CtrlCRace) for f in logger.filters):
        logger.addFilter(_CtrlCRace())


def require_cluster_for_report(performance_report: str | None) -> None:
    """The report is Dask's: without a cluster (threads of this process) there is none."""
    if performance_report:
        raise PipelineError("--performance-report needs a Dask cluster: add --workers N or "
                            "--scheduler ADDRESS", path=str(performance_report))
