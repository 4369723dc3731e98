"""The classroom's JupyterLab, loaded by `make lab` (`jupyter lab --config=jupyter_server_config.py`).

- `solutions/` (the hidden checks) is hidden from students: not listed in the file browser and
  refused (404) by the contents and files API, at any depth. `make lab-instructor` shows it
  (`--LablineContentsManager.show_solutions=True`). A kernel or terminal can still read the
  files: a class that must not have them gets the released folder instead.
- A notebook under the project's `notebooks/` or `exercises/` is saved as committed: no outputs,
  execution counts, cell timings or the kernel's full language_info. Running one in the Lab never
  changes a tracked file; working copies elsewhere (`work/`) keep their outputs.
- Terminals and kernels find the environment's commands (`labline`, `papermill`) first on PATH;
  the shell is not a login shell, whose /etc/profile would reset PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path, PurePosixPath

from jupyter_server.files.handlers import FilesHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from traitlets import Bool, default

from labline.exercises.catalog import default_dirs
from labline.paths import project_root

SOLUTIONS, TEMPLATES = (folder.name for folder in default_dirs(Path()))
SOURCE_FOLDERS = frozenset({"notebooks", TEMPLATES})  # saved without what a run adds


class LablineContentsManager(AsyncLargeFileManager):
    """The default contents manager, with `solutions/` hidden unless `show_solutions` is set."""

    show_solutions = Bool(False, config=True, help="List and serve solutions/ (the instructor's Lab).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_pre_save_hook(save_as_committed)

    @default("files_handler_class")
    def _files_handler_class_default(self):
        return FilesHandler  # /files/ asks is_hidden too (the default static handler knows only dotfiles)

    def hidden_names(self) -> frozenset[str]:
        return frozenset() if self.show_solutions else frozenset({SOLUTIONS})

    def should_list(self, name: str) -> bool:
        return super().should_list(name) and name not in self.hidden_names()

    async def is_hidden(self, path: str) -> bool:
        inside = not self.hidden_names().isdisjoint(PurePosixPath(path.strip("/")).parts)
        return inside or await super().is_hidden(path)


def is_source_notebook(root_dir: str, path: str) -> bool:
    """True for a notebook under `notebooks/` or `exercises/` of the project holding it (its pipeline.yaml)."""
    os_path = Path(root_dir, path.strip("/")).resolve()
    parts = os_path.relative_to(project_root(os_path.parent)).parts
    return len(parts) > 1 and parts[0] in SOURCE_FOLDERS


def save_as_committed(model: dict, path: str, contents_manager, **kwargs) -> None:
    """A pre-save hook: strip what running adds from a source notebook, so saving it leaves git clean."""
    if model.get("type") != "notebook" or not is_source_notebook(contents_manager.root_dir, path):
        return
    notebook = model["content"]
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    language = notebook.get("metadata", {}).get("language_info")
    if language:
        notebook["metadata"]["language_info"] = {"name": language.get("name", "python")}


def environment_first_on_path() -> None:
    """The server's environment's bin/ first on PATH: its terminals and kernels inherit it."""
    bin_dir = str(Path(sys.prefix) / "bin")
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    os.environ["PATH"] = os.pathsep.join([bin_dir, *rest])


environment_first_on_path()
c = get_config()  # noqa: F821 (given to config files by traitlets)
c.ServerApp.contents_manager_class = LablineContentsManager
c.ServerApp.terminado_settings = {"shell_command": [os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"]}
