import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, env_overrides):
    unset = {
        "DATABASE_URL",
        "MIGRATION_DATABASE_URL",
        "DEBUG",
        "SECRET_KEY",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
        "RECEIPT_SIGNING_KEY",
    }
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_debug_off_without_a_secret_key_stops_with_one_clear_sentence():
    result = run_manage("check", env_overrides={"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def receipt_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def test_debug_off_without_a_receipt_signing_key_fails_the_system_check():
    result = run_manage(
        "check", env_overrides={"DEBUG": "false", "SECRET_KEY": "k3y-" + "x7Qp9vLm2Rt8Zw4Nc6Hb1Jd5Fg3Ks0Ya" * 2}
    )
    assert result.returncode != 0
    assert "consents.E001" in result.stderr
    assert "RECEIPT_SIGNING_KEY is not set" in result.stderr


def test_the_production_settings_pass_the_deploy_check():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_overrides={
            "DEBUG": "false",
            "SECRET_KEY": "k3y-" + "x7Qp9vLm2Rt8Zw4Nc6Hb1Jd5Fg3Ks0Ya" * 2,
            "SITE_URL": "https://consent.example.com",
            "ALLOWED_HOSTS": "consent.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://consent.example.com",
            # As an environment variable carries it: the PEM's line breaks written as \n.
            "RECEIPT_SIGNING_KEY": receipt_key_pem().replace("\n", "\\n"),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_staff_sign_in_requires_a_second_factor_and_make_run_does_not():
    probe = "import config.urls; from django.contrib import admin; print(admin.site.__class__.__name__)"
    production = run_manage(
        "shell",
        "-c",
        probe,
        env_overrides={"DEBUG": "false", "SECRET_KEY": "k3y-" + "x7Qp9vLm2Rt8Zw4Nc6Hb1Jd5Fg3Ks0Ya" * 2},
    )
    assert production.stdout.strip().endswith("OTPAdminSite"), production.stderr
    development = run_manage("shell", "-c", probe, env_overrides={"DEBUG": "true"})
    assert development.stdout.strip().endswith("AdminSite")
    assert not development.stdout.strip().endswith("OTPAdminSite")
