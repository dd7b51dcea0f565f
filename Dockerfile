# attnviz in a container: the app on the shipped models, warmed at start (python -m attnviz.serve).
#   docker build -t attnviz .            docker run -p 8501:8501 attnviz
# For a course, compose.yaml runs several of these behind nginx, each browser kept on one.
FROM python:3.11-slim-bookworm
WORKDIR /app
# Debian's CJK fonts, as on the test machines: whatever draws the zh pages in the container (a browser for
# python -m attnviz.screenshots) shows glyphs, not empty boxes
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
COPY requirements.txt pyproject.toml README.md ./
# torch and torchvision pinned in requirements.txt (a CUDA build from PyPI; the app runs on the CPU without a GPU)
RUN pip install --no-cache-dir -r requirements.txt
COPY app.py ./
COPY .streamlit ./.streamlit
COPY attnviz ./attnviz
COPY pages ./pages
COPY checkpoints ./checkpoints
# attnviz runs from /app (python -m puts it on the path); a user of its own, not root
RUN useradd --create-home attnviz
USER attnviz
EXPOSE 8501
# one worker per two cores of the container (attnviz.workpool); set ATTNVIZ_WORKERS to choose
CMD ["python", "-m", "attnviz.serve", "--port", "8501", "--address", "0.0.0.0"]
