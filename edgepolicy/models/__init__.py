"""Model trust: facts about ONNX models (inspection, fairness evaluation, attestation) and
signed model directories (signing, verification, the admission verifier).

Modules here that need onnx, onnxruntime or fairlearn (the ``models`` extra) import them at
their top; callers on the admission path import only what does not (``attestation`` loads the
heavy modules inside its functions; ``verifier`` loads model_signing and sigstore on the first
verification).
"""
