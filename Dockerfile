# The mailroom image: every worker, the command line and the web admin. `docker build -t mailroom .`;
# run a worker with `docker run mailroom matcher`, the admin with `docker run mailroom admin`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid, so that Kubernetes' runAsUser and file ownership of mounted volumes agree with the image.
RUN groupadd --system --gid 10001 mailroom \
    && useradd --system --uid 10001 --gid mailroom --home-dir /var/lib/mailroom --no-create-home \
       --shell /usr/sbin/nologin mailroom \
    && install -d -o mailroom -g mailroom -m 0750 /var/lib/mailroom

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY runtime/ runtime/
COPY ingest/ ingest/
COPY matcher/ matcher/
COPY converter/ converter/
COPY responder/ responder/
COPY mailroom/ mailroom/
COPY admin/ admin/
RUN pip install . && mailroom --help > /dev/null && rm -rf /src

WORKDIR /var/lib/mailroom
USER 10001:10001
ENV MAILROOM_DATA_DIR=/var/lib/mailroom \
    MAILROOM_METRICS_HOST=0.0.0.0 \
    MAILROOM_METRICS_PORT=9108
EXPOSE 9108 8080
ENTRYPOINT ["mailroom"]
CMD ["--help"]
