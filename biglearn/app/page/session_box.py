"""Each browser session's state on the page, and the plumbing that runs a tab's handlers on it one at a time."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import gradio as gr
from gradio.events import Dependency

from biglearn.app.session import USER_ERRORS


class SessionBox:
    """One browser session's `Session`, held in `gr.State` and replaced only under the box's lock.

    Gradio runs a session's events concurrently (each listener has its own queue), and a `gr.State` input is read when
    an event starts and written back when it ends. Two quick actions on different controls (a patch click, then
    Resample; a tab, then a mask tool) would both start from the same Session, and whichever finished last would
    silently drop the other's change. So the State holds this box, the same object for every event of the session,
    and each handler reads the current Session, runs, and stores the new one under the lock: one at a time.

    The State's initial value is a box: Gradio gives each browser session a deep copy of it on the session's first
    event, so even events that start before the page's load event has finished share the load event's box.
    """

    def __init__(self) -> None:
        self.session = None
        self.brush_open = False  # the Brush tab was opened before the session started: start it with the tab open
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> SessionBox:
        """Only the State's initial (empty) box is ever copied, once per browser session: a new empty box."""
        return SessionBox()


def session_state() -> gr.State:
    """A `SessionBox` per browser session, dropped when idle."""
    return gr.State(SessionBox(), time_to_live=3 * 3600)


class TabEvents:
    """A tab's events on a `SessionBox`: each handler runs on the box's session under its lock, and every event lists
    the box and all the tab's components that handlers update as its outputs.

    `named` maps the handlers' update names to components; a group (e.g. 'panels') names a list of components that
    takes a list of values. Subclasses say how a session starts.
    """

    def __init__(self, state: gr.State, named: dict, groups: dict, status: gr.Markdown) -> None:
        self.state, self.named, self.groups, self.status = state, named, groups, status
        self.outputs = [state, *named.values(), *(component for group in groups.values() for component in group)]

    def show(self, box: SessionBox, updates: dict) -> dict:
        """A handler's named updates as {component: value}, the box included."""
        shown = {self.state: box}
        for name, value in updates.items():
            if name in self.groups:
                shown.update(zip(self.groups[name], value))
            else:
                shown[self.named[name]] = value
        return shown

    def start_session(self, box: SessionBox) -> dict:
        """Start the box's session (under its lock); return its named updates."""
        raise NotImplementedError

    def problem(self, box: SessionBox, exc: Exception) -> dict:
        """What a problem the user can fix shows."""
        return {self.status: f"**Problem:** {exc}"}

    def run(self, handler: Callable, box: SessionBox, *args) -> dict:
        """Call a session handler on the session as it is now (one event at a time per browser session, see
        SessionBox); problems the user can fix become a warning and a status line."""
        with box.lock:
            try:
                if box.session is None:  # the tab's start failed (e.g. no model) or is still running
                    self.start_session(box)
                box.session, updates = handler(box.session, *args)
                return self.show(box, updates)
            except USER_ERRORS as exc:
                gr.Warning(str(exc))
                return self.problem(box, exc)

    def on(self, trigger: Callable, handler: Callable, inputs: Sequence = (), **kwargs) -> Dependency:
        """Wire `trigger` to `handler(session, *values of inputs)`; returns the event (for `.then`)."""
        return trigger(lambda box, *args: self.run(handler, box, *args), [self.state, *inputs], self.outputs,
                       api_visibility="private", **kwargs)
