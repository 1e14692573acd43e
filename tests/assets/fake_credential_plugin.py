#!/usr/bin/env python3
"""A client-go exec credential plugin for tests, driven by the directory in $PLUGIN_STATE.

Call N (from 0) records its arguments, KUBERNETES_EXEC_INFO, $PLUGIN_MARK and whether standard
input is a terminal in call-N.json, then answers with entry N of answers.json (the last entry
once the list is used up): {"output": OBJECT} prints it as JSON, {"raw": TEXT} prints the text,
{"exit": CODE} fails with that code.
"""

import json
import os
import sys
from pathlib import Path

state = Path(os.environ["PLUGIN_STATE"])
number = len(list(state.glob("call-*.json")))
record = {
    "argv": sys.argv[1:],
    "exec_info": os.environ.get("KUBERNETES_EXEC_INFO"),
    "mark": os.environ.get("PLUGIN_MARK"),
    "stdin_is_tty": sys.stdin is not None and sys.stdin.isatty(),
}
(state / f"call-{number:03d}.json").write_text(json.dumps(record))
answers = json.loads((state / "answers.json").read_text())
answer = answers[min(number, len(answers) - 1)]
if "exit" in answer:
    print("fake plugin: asked to fail", file=sys.stderr)
    sys.exit(answer["exit"])
print(answer["raw"] if "raw" in answer else json.dumps(answer["output"]))
