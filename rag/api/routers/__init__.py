"""One router per resource: questions (ask, search), documents (documents, uploads, jobs),
openai (the OpenAI-compatible chat completions and models), ops (health, metrics)."""
