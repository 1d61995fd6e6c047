# The Challenge's convention: the entry lives in /physionet and runs from there.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 physionet
WORKDIR /physionet

# A folder of local wheels (PIP_FIND_LINKS) may be mounted at build time; nothing of it stays in the image.
ARG PIP_FIND_LINKS
COPY requirements.txt ./
RUN pip install --no-cache-dir --disable-pip-version-check --requirement requirements.txt

COPY --chown=physionet:physionet . /physionet
USER physionet

# Training:  docker run -v TRAIN:/data:ro -v MODEL:/model IMAGE python train_model.py /data /model
# Inference: docker run -v TEST:/data:ro -v OUT:/out IMAGE python driver.py model /data /out
# 2021: the organisers add their train_model.py, test_model.py and helper_code.py beside team_code.py
CMD ["python", "driver.py", "model", "/data", "/out"]
