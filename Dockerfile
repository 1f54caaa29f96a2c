# syntax=docker/dockerfile:1
# mucode on the CPU: the server, the bubblewrap sandbox and llama.cpp for the default model.
#   docker build -t mucode .
#   docker run -p 8000:8000 -v mucode-models:/var/cache/mucode \
#     --security-opt seccomp=docker/seccomp-bwrap.json --security-opt systempaths=unconfined \
#     --security-opt apparmor=unconfined mucode
# (bubblewrap creates namespaces and mounts a fresh /proc in them; docs/docker.md says what each
# option allows, and the podman form.) The GPU image with vLLM is Dockerfile.cuda.
# tests/test_docker_image.py builds and runs this image with podman (make test-docker);
# tests/test_dockerfile.py installs its apt packages on a Debian bookworm host.

ARG PYTHON=3.11

FROM python:${PYTHON}-slim-bookworm AS build
# Compilers for llama-cpp-python, which PyPI ships as source only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY mucode ./mucode
COPY engine ./engine
COPY server ./server
COPY sandbox ./sandbox
COPY training ./training
COPY clients ./clients
# GGML_NATIVE=OFF: the image runs on other CPUs than the one that built it; AVX2/FMA (x86-64-v3,
# every x86 server CPU since 2015) keeps it fast.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN /opt/venv/bin/pip install --no-cache-dir --upgrade pip==26.3 \
    && /opt/venv/bin/pip install --no-cache-dir ".[llama]"

FROM python:${PYTHON}-slim-bookworm
# libgomp1: llama.cpp's OpenMP runtime, which the build stage has with its compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
# The sandbox's scientific environment (numpy, pandas, polars, scikit-learn, ...: ~800 MB), a venv
# of the image's interpreter that every sandbox worker binds read-only.
RUN /opt/venv/bin/mucode sandbox setup --profile scientific --path /opt/mucode-sandbox
# The sandbox runs candidates as uid 65534 inside bubblewrap; the server itself is not root either.
RUN useradd --create-home --uid 10001 mucode \
    && mkdir -p /var/cache/mucode \
    && chown mucode /var/cache/mucode
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MUCODE_HOST=0.0.0.0 \
    MUCODE_PORT=8000 \
    MUCODE_CACHE_DIR=/var/cache/mucode \
    MUCODE_SANDBOX_ENV=/opt/mucode-sandbox
# The model bundle (~490 MB) is pulled and verified on first start; keep it in a volume.
VOLUME ["/var/cache/mucode"]
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["mucode"]
CMD ["serve"]
