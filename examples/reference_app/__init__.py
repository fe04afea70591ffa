"""The ragotel reference app: a FAISS retriever and a chat API on vLLM, instrumented only through ragotel.

Services (each ``python -m examples.reference_app.<name>``):

* ``ingest``    — builds the dense (FAISS) and sparse (TF-IDF) indexes from ``corpus/``;
* ``retriever`` — ``POST /search`` over the index, with reload, health, readiness and metrics;
* ``chat_api``  — ``POST /chat`` and ``/chat/stream``: retrieve, build the prompt, ask vLLM;
* ``run_local`` — everything above plus vLLM and Prometheus on this machine, in one command.
"""
