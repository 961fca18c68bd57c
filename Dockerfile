# brandlift: one image for the API (`brandlift serve`, the default), the worker
# (`brandlift worker`) and migrations (`brandlift migrate`); docker-compose.yml runs all three.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENBLAS_NUM_THREADS=1 \
    PORT=8000

# implicit's manylinux wheel links the system OpenMP runtime (libgomp.so.1), which slim lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/brandlift

# Dependencies first, against a placeholder package and README, so that editing the code or
# the docs does not reinstall numpy, scipy, scikit-learn and implicit.
COPY pyproject.toml ./
RUN mkdir app \
    && touch app/__init__.py README.md \
    && pip install -e .

# Editable install: the package is imported from /srv/brandlift/app, so app/migrate.py finds
# alembic.ini and migrations/ beside it, as in a checkout.
COPY README.md alembic.ini ./
COPY migrations ./migrations
COPY app ./app

# Run as an unprivileged user; var/ is where the default SQLite DATABASE_URL would live.
RUN groupadd --system --gid 10001 brandlift \
    && useradd --system --uid 10001 --gid brandlift --create-home --no-log-init brandlift \
    && mkdir -p var \
    && chown brandlift:brandlift var
USER brandlift

EXPOSE 8000

# Liveness only: the image also runs the worker and migrations, which have no HTTP server
# (docker-compose.yml turns the check off for those and checks /health/ready for the API).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["brandlift", "serve"]
