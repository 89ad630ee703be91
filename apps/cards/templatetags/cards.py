from django import template

from ..selectors import card_for, evaluation_results, readme_artifact

register = template.Library()


@register.simple_tag
def model_card(model, production) -> dict:
    """`{% model_card model production as card %}`: the model's card, and the evaluation results of its production
    version (the page has read it already)."""
    return {"card": card_for(model), "evaluation": evaluation_results(production), "evaluated": production}


@register.simple_tag
def version_card(version) -> dict:
    """`{% version_card version as card %}`: the version's card, its evaluation results, and a README.md to offer."""
    card = card_for(version.model, version)
    return {"card": card, "evaluation": evaluation_results(version), "evaluated": version, "readme": None if card else readme_artifact(version)}
