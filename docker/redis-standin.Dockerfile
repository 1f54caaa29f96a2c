# A stand-in for redis:7-alpine where no registry is reachable: Debian bookworm's Redis 7 on the
# stand-in base (docker/standin-base.sh). The compose file uses it with
#   MUCODE_REDIS_IMAGE=localhost/mucode-redis docker compose up
#   podman build -t localhost/mucode-redis -f docker/redis-standin.Dockerfile docker
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER 65534
EXPOSE 6379
CMD ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
