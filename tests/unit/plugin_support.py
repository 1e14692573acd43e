"""The fake exec credential plugin (tests/assets/fake_credential_plugin.py) as unit tests drive
it; the ``fake_plugin`` fixture (conftest.py) gives each test its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAKE_PLUGIN = Path(__file__).resolve().parents[1] / "assets" / "fake_credential_plugin.py"


class FakePlugin:
    """Drives tests/assets/fake_credential_plugin.py through its state directory."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def answer(self, *answers: dict[str, Any]) -> None:
        """Set what the plugin's calls answer, in order (the last one repeats)."""
        (self.state / "answers.json").write_text(json.dumps(list(answers)))

    def calls(self) -> list[dict[str, Any]]:
        """What each call of the plugin saw, in order."""
        return [json.loads(p.read_text()) for p in sorted(self.state.glob("call-*.json"))]

    def exec_section(self, **fields: Any) -> dict[str, Any]:
        """A kubeconfig ``exec`` section running the plugin (v1, interactiveMode Never)."""
        section: dict[str, Any] = {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(FAKE_PLUGIN),
            "interactiveMode": "Never",
            "env": [{"name": "PLUGIN_STATE", "value": str(self.state)}],
        }
        section.update(fields)
        return section
