# duban (督办) runtime image.
#   docker build -t duban .
#   docker run -p 8080:8080 -v duban-data:/app/data duban          # SQLite in the volume
# The app reads templates/ and config/ relative to its working directory (/app).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system duban \
 && useradd --system --gid duban --home-dir /app --no-create-home --shell /usr/sbin/nologin duban

# Charts draw Chinese with Noto Sans CJK SC (scripts/system-deps); no browser at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Whole project (see .dockerignore); a non-editable install puts bot/handlers/jobs
# (and the Alembic migrations) into site-packages; templates/ and config/ stay in /app.
COPY . .
RUN pip install --no-cache-dir . \
 && rm -rf build ./*.egg-info \
 && MPLCONFIGDIR=/app/.mplcache python -c "import matplotlib.font_manager" \
 && mkdir -p /app/data \
 && chown -R duban:duban /app/data /app/.mplcache

# matplotlib's font cache, built above: a read-only home must not mean a rescan per start.
ENV MPLCONFIGDIR=/app/.mplcache \
    DUBAN_HOST=0.0.0.0 \
    DUBAN_PORT=8080 \
    DUBAN_DATABASE_URL=sqlite+aiosqlite:////app/data/duban.db

USER duban
VOLUME ["/app/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DUBAN_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["duban"]
CMD ["serve"]
