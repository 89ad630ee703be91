"""Demo users and models with real small artifacts. Only for the local run command: it sets known passwords."""

import json
import struct

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts.teams import team_leads_ensure
from apps.versions.lifecycle import Stage
from apps.cards.services import card_update
from apps.approvals.services import alias_policy_update, alias_set, transition_request_approve, transition_request_create
from apps.comments.services import comment_create
from apps.models.models import RegisteredModel
from apps.models.services import model_create
from apps.validation.services import validation_policy_update, validation_run
from apps.versions.document import metadata_from_dict
from apps.catalog.services import version_register
from apps.versions.services import incoming_from_bytes

DEMO_USERS = [
    # username, password, superuser, teams
    ("admin", "admin-demo-pass", True, []),
    ("lead", "lead-demo-pass", False, ["nlp-team"]),
    ("scientist", "scientist-demo-pass", False, ["nlp-team"]),
    ("outsider", "outsider-demo-pass", False, []),
]


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    """A valid .safetensors file: 8-byte little-endian header length, JSON header, then the raw tensor data."""
    header, offset, data = {}, 0, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + data


def float32s(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


# v3's README: offered as its card on the version page (the front matter fills the card's fields).
DEMO_README = b"""---
license: apache-2.0
datasets: [imdb-reviews]
intended_use: Sentiment of English movie and product reviews.
limitations: Trained on movie reviews only; sarcasm and non-English text are misread.
---
# sentiment-classifier v3

Continues training from v2 with a longer schedule: two points more accuracy at lower latency.
"""


def demo_files(seed: int) -> list:
    hidden = 4 + seed
    config = {"architectures": ["DemoForSequenceClassification"], "model_type": "demo", "hidden_size": hidden, "num_labels": 2}
    vocab = {"[PAD]": 0, "[UNK]": 1, "the": 2, "movie": 3, "great": 4, "bad": 5}
    weights = safetensors_bytes(
        {
            "classifier.weight": ("F32", [2, hidden], float32s([0.01 * (i + seed) for i in range(2 * hidden)])),
            "classifier.bias": ("F32", [2], float32s([0.0, 0.1 * seed])),
        }
    )
    return [
        incoming_from_bytes("config.json", json.dumps(config, indent=2).encode()),
        incoming_from_bytes("tokenizer.json", json.dumps({"version": "1.0", "model": {"type": "WordLevel", "vocab": vocab}}).encode()),
        incoming_from_bytes("model.safetensors", weights),
    ] + ([incoming_from_bytes("README.md", DEMO_README)] if seed == 2 else [])


class Command(BaseCommand):
    help = "Create demo users, a team and models with versions (idempotent). Prints the demo logins."

    def add_arguments(self, parser):
        parser.add_argument("--i-know-this-sets-known-passwords", action="store_true", dest="confirmed")

    @transaction.atomic
    def handle(self, *args, confirmed: bool, **options):
        if not confirmed:
            raise CommandError("seed_demo creates users with published passwords; pass --i-know-this-sets-known-passwords (the run script does).")
        users = {}
        # Addresses at example.com, so the demo's notification emails show in the worker's console (EMAIL_URL).
        for username, password, superuser, teams in DEMO_USERS:
            user, created = get_user_model().objects.get_or_create(
                username=username, defaults={"is_staff": superuser, "is_superuser": superuser, "email": f"{username}@example.com"}
            )
            if created:
                user.set_password(password)
                user.save()
            for team in teams:
                user.groups.add(Group.objects.get_or_create(name=team)[0])
            users[username] = user
        # The team's lead is in its leads group, which holds "approve" on every model the team owns.
        users["lead"].groups.add(team_leads_ensure(team=Group.objects.get(name="nlp-team")))
        if not RegisteredModel.objects.filter(name="sentiment-classifier").exists():
            self._seed_models(users)
        self.stdout.write("Demo logins (local demo only):")
        for username, password, superuser, teams in DEMO_USERS:
            role = "administrator" if superuser else {"lead": "team lead (approves)", "scientist": "data scientist", "outsider": "sees nothing"}[username]
            self.stdout.write(f"  {username:<10} {password:<22} {role}")

    def _seed_models(self, users):
        team = Group.objects.get(name="nlp-team")
        lead, scientist = users["lead"], users["scientist"]
        sentiment = model_create(
            name="sentiment-classifier", actor=lead, team=team, tags=["nlp", "text-classification"],
            description="# Sentiment classifier\n\nBinary sentiment on movie reviews.\n\n| split | size |\n|---|---|\n| train | 25k |\n| test | 25k |\n",
        )
        validation_policy_update(
            model=sentiment, actor=lead, required_file_patterns=["tokenizer.json"], pinned_baseline=None,
            rules=[
                {"metric": "accuracy", "direction": "higher", "allowed_regression": 0.01, "regression_kind": "absolute", "min_value": 0.8, "max_value": None},
                {"metric": "latency_ms", "direction": "lower", "allowed_regression": 0.2, "regression_kind": "relative", "min_value": None, "max_value": None},
            ],
        )
        for seed, accuracy in enumerate([0.86, 0.89, 0.91]):
            version = version_register(
                model=sentiment,
                files=demo_files(seed),
                actor=scientist,
                metadata=metadata_from_dict(
                    {
                        "flavor": "huggingface",
                        "description": f"Fine-tune run {seed + 1}.",
                        "metrics": {"accuracy": accuracy, "f1": round(accuracy - 0.02, 3), "latency_ms": 12.5 - seed},
                        "hyperparameters": {"learning_rate": 3e-5 / (seed + 1), "epochs": 3 + seed, "batch_size": 32},
                        "datasets": [
                            {"name": "imdb-reviews", "uri": "s3://datasets/imdb/train", "digest": "sha256:5f1c0a", "role": "training"},
                            {"name": "imdb-reviews-test", "uri": "s3://datasets/imdb/test", "digest": "sha256:9e2b44", "role": "evaluation"},
                        ],
                        "code": {"repository": "https://git.example.com/nlp/sentiment.git", "commit": f"{seed + 1:x}" * 7 + "0" * 33, "branch": "main", "dirty": False},
                        "dependencies": {"requirements": "torch==2.3.1\ntransformers==4.41.2\n", "python_version": "3.11", "framework": "transformers", "framework_version": "4.41.2"},
                        "environment": {"image": "registry.example.com/train@sha256:" + "ab" * 32},
                        "run": {"id": f"run-{seed + 1:04d}", "url": f"https://mlflow.example.com/#/experiments/7/runs/run-{seed + 1:04d}"},
                        # v3 continues training from v2's weights
                        "parents": [{"model": "sentiment-classifier", "version": 2, "relation": "fine_tuned_from"}] if seed == 2 else [],
                    }
                ),
            )
            # Validate now, in-process, so the demo starts with reports; the worker later finds these jobs done.
            validation_run(job_id=version.validation_jobs.get().pk)
            if seed >= 1:
                transition_request_create(version=version, to_stage=Stage.STAGING, actor=scientist, justification="Ready for review")
            if seed == 1:
                transition_request = transition_request_create(
                    version=version, to_stage=Stage.PRODUCTION, actor=scientist, justification="Beats v1 on accuracy"
                )
                transition_request_approve(transition_request=transition_request, actor=lead, comment="Evidence looks good.")
                alias_set(model=sentiment, alias="champion", version=version, actor=lead, reason="Best offline accuracy so far")
                alias_policy_update(model=sentiment, alias="champion", actor=lead, required_approvals=1, gates=True)
            if seed == 2:
                pending = transition_request_create(
                    version=version, to_stage=Stage.PRODUCTION, actor=scientist, justification="Two points better than v2 at lower latency"
                )
                # A review thread, so the demo shows comments and a mention (the scientist's notification).
                comment_create(actor=lead, transition_request=pending, body="Is the latency measured on the **same hardware** as v2's, @scientist?")
                alias_set(model=sentiment, alias="challenger", version=version, actor=scientist, reason="Shadow traffic against @champion")
        card_update(
            model=sentiment, actor=lead, body=sentiment.description, license="apache-2.0",
            intended_use="Sentiment of English movie reviews, to rank reviews for moderation.",
            limitations="English only; sarcasm and very short reviews are often misread.",
            training_data="IMDb reviews (25k train); evaluated on the 25k test split.",
        )
        # Created by the scientist in the team: the lead approves on it through the team's leads group.
        fraud = model_create(name="fraud-detector", actor=scientist, team=team, tags=["tabular"], description="Gradient-boosted fraud scores.")
        version_register(
            model=fraud, files=demo_files(7), actor=scientist,
            metadata=metadata_from_dict({"flavor": "custom", "metrics": {"auc": 0.97}, "hyperparameters": {"max_depth": 6}}),
        )
