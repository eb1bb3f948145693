# Rung's images. `server` (the default target): applies the migrations, then serves.
# `worker`: the client with Keras and a CPU build of PyTorch, running `rung worker`.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 rung
WORKDIR /app

FROM base AS worker
COPY client ./client
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install "./client[demo]"
USER rung
ENV KERAS_BACKEND=torch
CMD ["rung", "worker", "rung.examples.digits"]

FROM base AS server
COPY pyproject.toml README.md ./
COPY client ./client
COPY service ./service
COPY migrations ./migrations
RUN pip install ./client . && mkdir -p /data /checkpoints && chown rung /data /checkpoints
USER rung
ENV RUNG_HOST=0.0.0.0 RUNG_PORT=8000 RUNG_DATA_DIR=/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]
CMD ["sh", "-c", "rung db upgrade && exec rung serve"]
