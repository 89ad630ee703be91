"""`model-registry`: the command line client pipelines use to talk to the registry's API.

Standard library only and independent of the server's code (no Django, no Celery), so it starts in tens of
milliseconds and a training or serving image needs nothing but this folder (`python -m registry_cli`).
"""
