# The Lookout image: `lookout` CLI (worker, simulate, topics, replay, ...). Used by
# docker-compose.yml for the workers, the topic creation step and the simulator.
#   docker build -t lookout .
#   docker run --rm lookout --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# dependencies first (cached while only the code changes): an empty package with the real metadata
COPY pyproject.toml README.md ./
RUN mkdir -p detectors streams && touch detectors/__init__.py streams/__init__.py \
    && pip install . && pip uninstall -y lookout && rm -rf detectors streams build
COPY detectors detectors
COPY streams streams
COPY examples examples
RUN pip install --no-deps . && rm -rf build

# compile the fleet engine's kernel once, into a cache the unprivileged user can read
ENV NUMBA_CACHE_DIR=/app/.numba-cache
RUN python -c 'from detectors.fleet import warm_up; print(f"kernel compiled in {warm_up():.1f} s")'

RUN useradd --system --create-home --uid 10001 lookout && mkdir /data && chown lookout /data \
    && chown -R lookout /app/.numba-cache
USER lookout
# every worker needs its own data dir (detector checkpoint, Faust state): mount a volume here
ENV LOOKOUT_DATA_DIR=/data \
    LOOKOUT_WEB_HOST=0.0.0.0 \
    LOOKOUT_WEB_PORT=6066
VOLUME ["/data"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LOOKOUT_WEB_PORT', '6066'), timeout=2)"]
ENTRYPOINT ["lookout"]
CMD ["worker"]
