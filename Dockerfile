# Local development image, built the way connect-cli's extension template builds it: the
# Connect extension runner with this project and its locked dependencies installed by Poetry.
#
# The tag must equal the connect-extension-runner version in pyproject.toml, and the LAST
# FROM must stay the runner image: the runner's own validator reads it at every start
# (tests/test_deployment.py checks both).
FROM cloudblueconnect/connect-extension-runner:43.1

# The image's Poetry installs into the image's Python, where cextrun lives, not into a venv.
ENV POETRY_VIRTUALENVS_CREATE=false \
    POETRY_NO_INTERACTION=1

WORKDIR /extension

# Dependencies first, in their own layer, so that editing the code does not reinstall them.
# Unlike the template there is no `poetry update`: poetry.lock decides every version, here as
# in CI. Whatever Poetry the image carries accepts this lock: every Poetry since 1.2 computes
# the same content hash for this pyproject, and the pypi-simple source needs 1.5 or later.
COPY pyproject.toml poetry.lock /extension/
RUN poetry install --no-root \
    && rm -rf /root/.cache/pypoetry

# Then the project itself (pyproject.toml names README.md as the package readme).
COPY README.md /extension/
COPY connect_mongodb_example /extension/connect_mongodb_example
RUN poetry install
