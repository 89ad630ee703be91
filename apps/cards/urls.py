from django.urls import path

from . import views

app_name = "cards"

urlpatterns = [
    path("models/<str:name>/card/edit/", views.model_card_edit, name="model"),
    path("models/<str:name>/card/preview/", views.card_preview, name="preview"),
    path("models/<str:name>/versions/<int:number>/card/edit/", views.version_card_edit, name="version"),
]
