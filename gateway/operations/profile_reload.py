"""Hot reload of device profiles: notice a changed profiles directory, load it, report it.

The pipeline polls `ProfileWatcher.changed()` every `profiles.reload_interval_s` and installs
what `load()` returns between two messages; a directory that fails to load leaves the previous
profiles active (the error names the file and field). Polling file times and sizes instead of
inotify: it works the same on every file system an edge box mounts, and costs a few `stat`s.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from gateway.errors import ProfileError
from gateway.profiles.policy import LoadPolicy
from gateway.profiles.registry import (
    CODEC_SUFFIX,
    KNOWN_DEVICES_SUFFIX,
    ProfileRegistry,
    load_directory,
    profile_files,
)

log = logging.getLogger(__name__)

DirectoryState = dict[str, tuple[int, int]]


class ProfileWatcher:
    """Blocking methods, the constructor too: the pipeline calls them in a thread."""

    def __init__(self, directory: Path, policy: LoadPolicy | None) -> None:
        self.directory = directory
        self.policy = policy
        self._seen = directory_state(directory)
        self._changed_files: set[str] = set()

    def changed(self) -> bool:
        """True once after files were added, removed or edited since the last call."""
        state = directory_state(self.directory)
        if state == self._seen:
            return False
        self._changed_files = {name for name, info in state.items() if self._seen.get(name) != info}
        self._seen = state
        return True

    def load(self) -> ProfileRegistry:
        """The directory's profiles; raises ProfileError (every problem, file and field)."""
        return load_directory(self.directory, self.policy)

    def report(self, old: ProfileRegistry, new: ProfileRegistry) -> None:
        before = {profile.id: profile for profile in old.profiles}
        after = {profile.id: profile for profile in new.profiles}
        changed = sorted(
            i for i in before.keys() & after.keys() if after[i].file in self._changed_files
        )
        log.info(
            "profiles reloaded: %d active; added %s, changed %s, removed %s",
            len(after),
            sorted(after.keys() - before.keys()) or "none",
            changed or "none",
            sorted(before.keys() - after.keys()) or "none",
        )


def directory_state(directory: Path) -> DirectoryState:
    """Profile file -> (mtime, size): cheap to take every few seconds, changes on any edit."""
    state: DirectoryState = {}
    try:
        files = profile_files([directory])
    except ProfileError:
        return state  # the directory vanished: loading it reports that properly
    files.extend(directory.rglob(f"*{KNOWN_DEVICES_SUFFIX}"))  # devices.known_file lists
    files.extend(directory.rglob(f"*{CODEC_SUFFIX}"))  # decode.script: vendor codecs
    for file in files:
        with contextlib.suppress(OSError):  # removed between listing and stat
            info = file.stat()
            state[str(file)] = (info.st_mtime_ns, info.st_size)
    return state
