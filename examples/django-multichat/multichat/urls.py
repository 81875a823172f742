from django.contrib.auth import views as auth_views
from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/token/", obtain_auth_token, name="api-token"),
    path("api/jwt/", TokenObtainPairView.as_view(), name="jwt-obtain"),
    path("api/jwt/refresh/", TokenRefreshView.as_view(), name="jwt-refresh"),
]
