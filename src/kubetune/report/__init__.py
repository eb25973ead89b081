"""What a person sees: live progress, the final summary and the HTML report."""

from .html import write_html_report
from .progress import CompositeObserver, QuietObserver, RichProgressObserver, failure_reason
from .summary import RunSummary, format_duration, format_number, render_summary

__all__ = [
    "CompositeObserver",
    "QuietObserver",
    "RichProgressObserver",
    "RunSummary",
    "failure_reason",
    "format_duration",
    "format_number",
    "render_summary",
    "write_html_report",
]
