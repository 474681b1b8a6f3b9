"""Shared fixtures: one real embedding model and one real index per test session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from rag.config import PROJECT_ROOT, Settings  # noqa: E402

SEEDS = PROJECT_ROOT / "seeds"


@pytest.fixture(scope="session")
def corpus():
    from rag.corpus import load_corpus

    return load_corpus(SEEDS)


@pytest.fixture(scope="session")
def embedder():
    from rag.embeddings import SentenceTransformerEmbeddings

    return SentenceTransformerEmbeddings(Settings().embed_model)


@pytest.fixture(scope="session")
def session_index_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="session")
def assistant(embedder, session_index_dir):
    """A real Assistant over the seeds, with its own index built once for the session."""
    from rag.service import Assistant

    settings = Settings(index_dir=session_index_dir)
    return Assistant(settings, embedder=embedder)


@pytest.fixture
def fresh_settings(tmp_path):
    return Settings(index_dir=tmp_path / "index")
