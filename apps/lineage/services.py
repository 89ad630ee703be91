from django.db import IntegrityError, transaction

from .models import Dataset, VersionDataset


def dataset_get_or_create(*, name: str, uri: str, digest: str = "", description: str = "") -> Dataset:
    """Datasets are deduplicated by (URI, digest); the URI is a record and is never fetched."""
    try:
        with transaction.atomic():
            dataset, _ = Dataset.objects.get_or_create(uri=uri, digest=digest, defaults={"name": name, "description": description})
    except IntegrityError:
        dataset = Dataset.objects.get(uri=uri, digest=digest)
    return dataset


def datasets_attach(*, version, datasets: list[dict]) -> None:
    links = []
    seen = set()
    for item in datasets:
        dataset = dataset_get_or_create(name=item["name"], uri=item["uri"], digest=item.get("digest", ""), description=item.get("description", ""))
        key = (dataset.pk, item["role"])
        if key not in seen:
            seen.add(key)
            links.append(VersionDataset(version=version, dataset=dataset, role=item["role"]))
    VersionDataset.objects.bulk_create(links)
