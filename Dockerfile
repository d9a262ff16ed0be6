# syntax=docker/dockerfile:1
# One image for every role of taskrelay: web, worker, relay worker and Flower.
# The role is chosen by the command (see docker-compose.yml); the default is the web.

FROM python:3.12-slim AS build
WORKDIR /src
COPY . .
# A wheel, so the runtime image gets the installed package and none of the sources.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install /wheels/*.whl

# Celery refuses nothing as root but warns; no role needs root, so none gets it.
RUN groupadd --system --gid 10001 taskrelay \
    && useradd --system --uid 10001 --gid taskrelay --home-dir /app --create-home \
       --shell /usr/sbin/nologin taskrelay
WORKDIR /app
USER taskrelay:taskrelay

# Inside the container the web listens on every interface; docker-compose.yml
# decides which host address, if any, publishes it.
ENV TASKRELAY_WEB_BIND=0.0.0.0:5000
EXPOSE 5000 5555

CMD ["gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"]
