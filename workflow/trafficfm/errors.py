"""The project's expected failures: one base class, so that one place can show them plainly.

An expected failure is the user's to fix (a bad record, a bad config value, a checksum mismatch, an
unsafe archive, a submission that fails validation); its message says what is wrong and where
(file, line or record, key). A rule script that stops on one writes the message to the rule's log
and to stderr, once, without a traceback (:func:`trafficfm.logs.setup_logging`). Anything else is a
bug or an environment problem and keeps its traceback, in the log too.
"""

from __future__ import annotations


class TrafficfmError(Exception):
    """An expected failure; the message alone tells the user what to fix."""
