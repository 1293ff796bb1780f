"""The node's /diagnostics status from its statistics summary (diagnostic_msgs, one status per period)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

# Counters that mean something went wrong in the period (level WARN), in the order they are reported.
PROBLEM_COUNTERS = ("bad_input", "pipeline_errors", "oversize_images_announced")


def diagnostic_array(stamp, name: str, hardware_id: str, summary: dict[str, float], previous: dict[str, float]):
    """One DiagnosticArray: OK, or WARN when a problem counter grew since ``previous`` (the last summary).

    summary: NodeStats.summary() plus the drop counters; every key becomes a KeyValue (numbers rounded).
    """
    grew = [counter for counter in PROBLEM_COUNTERS if summary.get(counter, 0) > previous.get(counter, 0)]
    if grew:
        level = DiagnosticStatus.WARN
        message = "problems in the last period: " + ", ".join(grew)
    elif summary.get("published", 0) == previous.get("published", 0):
        level, message = DiagnosticStatus.OK, "idle (no frame published in the last period)"
    else:
        level, message = DiagnosticStatus.OK, f"publishing at {summary.get('rate_hz', 0.0):.2f} Hz"
    values = [KeyValue(key=key, value=_format(value)) for key, value in sorted(summary.items())]
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=values)
    return DiagnosticArray(header=_header(stamp), status=[status])


def _format(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp, frame_id="")
