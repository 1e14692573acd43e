# The edgepolicy webhook image that deploy/ references (`edgepolicy serve`; OPA runs as a sidecar).
# Multi-stage: the build stage installs the project exactly as `pip install .` does into a venv;
# the runtime stage copies only that venv and runs as a non-root user. The `signing` extra
# (model-signing, sigstore, pyOpenSSL): the webhook verifies model signatures at admission, and the
# image is also the init container that verifies model directories at pod start (`edgepolicy model
# verify`). The evaluation libraries of the `models` extra (onnx, onnxruntime, fairlearn and
# scikit-learn, scipy, pandas, numpy) are left out: admission never inspects or evaluates a model.
# The base image by digest (the multi-architecture index), its tag as a comment; how to move it to a
# new tag or rebuild: docs/deploy.md ("Image digests").
# python:3.11.14-slim-bookworm
ARG PYTHON_IMAGE=python@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# edgepolicy/policy_library is a symlink to ../rego: both are copied so the wheel gets the library.
COPY pyproject.toml README.md LICENSE ./
COPY edgepolicy ./edgepolicy
COPY webhook ./webhook
COPY bundles ./bundles
COPY rego ./rego
RUN python -m venv /opt/edgepolicy \
 && /opt/edgepolicy/bin/pip install '.[signing]' \
 && /opt/edgepolicy/bin/edgepolicy --version

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/edgepolicy /opt/edgepolicy
ENV PATH=/opt/edgepolicy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532: the conventional "nonroot" uid; deploy/ runs with the same uid and a read-only root
# filesystem (the webhook writes only to /tmp, for its Prometheus multiprocess files).
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["edgepolicy"]
CMD ["serve", "--tls-cert=/etc/edgepolicy/tls/tls.crt", "--tls-key=/etc/edgepolicy/tls/tls.key", \
     "--opa-url=http://127.0.0.1:8181"]
