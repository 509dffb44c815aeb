"""Runs ONNX graphs with ONNX Runtime alone, as a deployment would: no neuraltab, no torch (checked at the end).

``python onnx_runner.py JOBS.json``: each job is ``{"onnx": path, "feeds": npz path, "out": npz path}``; the outputs
are written under their graph names. Strings travel as numpy unicode arrays (npz without pickle).
"""

import json
import sys

import numpy as np
import onnxruntime as ort


def main(jobs_path: str) -> None:
    sessions: dict[str, ort.InferenceSession] = {}
    for job in json.load(open(jobs_path)):
        if job["onnx"] not in sessions:
            sessions[job["onnx"]] = ort.InferenceSession(job["onnx"], providers=["CPUExecutionProvider"])
        session = sessions[job["onnx"]]
        with np.load(job["feeds"], allow_pickle=False) as feeds:
            inputs = {k: (feeds[k].astype(object) if feeds[k].dtype.kind == "U" else feeds[k]) for k in feeds.files}
        outputs = session.run(None, inputs)
        names = [o.name for o in session.get_outputs()]
        np.savez(job["out"], **{n: (v.astype(str) if v.dtype == object else v) for n, v in zip(names, outputs)})
    assert "torch" not in sys.modules and "neuraltab" not in sys.modules, "the runtime side imported torch"
    print("ran", len(json.load(open(jobs_path))), "jobs without torch")


if __name__ == "__main__":
    main(sys.argv[1])
