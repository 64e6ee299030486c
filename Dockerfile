# One image: web (default) or worker, chosen by command.
#   docker run -e DATABASE_URL=... -e REFERFLOW_ADMIN_TOKEN=... -e REFERFLOW_SECRET_KEY=... -p 8000:8000 referflow
#   docker run ... referflow referflow worker
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8000
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY schemas ./schemas
RUN pip install --no-cache-dir . tzdata && useradd --create-home referflow
USER referflow
EXPOSE 8000
CMD ["sh", "-c", "referflow migrate && referflow serve --host 0.0.0.0 --port ${PORT} --workers 4"]
