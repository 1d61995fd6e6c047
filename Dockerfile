# The Challenge's convention: the entry lives in /physionet and runs from there.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 physionet
WORKDIR /physionet

COPY requirements.txt ./
RUN pip install --no-cache-dir --requirement requirements.txt

COPY --chown=physionet:physionet . /physionet
USER physionet

# Training:  docker run -v TRAIN:/data:ro -v MODEL:/model IMAGE python train_model.py /data /model
# Inference: docker run -v TEST:/data:ro -v OUT:/out IMAGE python driver.py model /data /out
CMD ["python", "driver.py", "model", "/data", "/out"]
