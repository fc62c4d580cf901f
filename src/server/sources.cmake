# The OpenAI-compatible HTTP server (gemma serve): above runtime/, used by the CLI only.
set(GEMMA_SOURCES server/openai.cpp server/server.cpp)
