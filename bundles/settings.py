"""The policy repository's settings file: enforcement actions and GPU resource names.

``edgepolicy-settings.yaml`` at the repository root becomes ``data.edgepolicy.settings`` in the
bundle (docs/decision-contract.md), so a team can roll a rule out in ``warn`` mode through Git:

    enforcementActions:
      finops.gpu-hours: warn
    gpuResourceNames: [nvidia.com/gpu, example.com/tpu]

The file is checked strictly (unknown keys and unknown actions are errors), so a typo cannot
silently change what is enforced.
"""

from __future__ import annotations

from typing import Any

from edgepolicy.errors import InputError
from edgepolicy.manifests import yaml_documents

SETTINGS_FILE = "edgepolicy-settings.yaml"
ACTIONS = ("deny", "warn", "dryrun")
_FIELDS = ("enforcementActions", "gpuResourceNames")


def parse_settings(content: bytes) -> dict[str, Any]:
    """Return the settings in ``content`` (the settings file's bytes).

    Raises:
        InputError: the file is not valid YAML (read as :mod:`edgepolicy.manifests` reads
            manifests: duplicate keys and too deep nesting are errors) or a field is unknown or
            malformed (the message names the file, and the line or the field).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text: {error}", path=SETTINGS_FILE) from error
    documents = yaml_documents(text, SETTINGS_FILE)
    if len(documents) > 1:
        raise InputError(
            "invalid YAML: expected one document", path=SETTINGS_FILE, line=documents[1][1]
        )
    value = documents[0][0] if documents else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("expected a mapping of settings", path=SETTINGS_FILE)
    for key in value:
        if key not in _FIELDS:
            raise InputError(
                f"unknown setting {key!r}, expected one of {list(_FIELDS)}", path=SETTINGS_FILE
            )
    actions = value.get("enforcementActions", {})
    if not isinstance(actions, dict):
        raise InputError(
            "enforcementActions must be a mapping of rule id to action", path=SETTINGS_FILE
        )
    for rule, action in actions.items():
        if action not in ACTIONS:
            raise InputError(
                f"enforcementActions.{rule} must be one of {list(ACTIONS)}, got {action!r}",
                path=SETTINGS_FILE,
            )
    names = value.get("gpuResourceNames", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InputError("gpuResourceNames must be a list of resource names", path=SETTINGS_FILE)
    return value
