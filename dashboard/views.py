"""The staff home page (dashboard), the internal-analysis page and its CSV, and the admin import."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import permission_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_POST

from common.requests import StaffRequest
from privacy.models import AccessLog
from privacy.services import access_log_record

from . import analysis, charts, imports, selectors, tasks
from .forms import ImportUploadForm
from .models import ImportJob

ANALYSIS_PERMISSION = "marketing.export_internal_analysis"
IMPORT_PERMISSION = "dashboard.import_customers"


def _context(request: HttpRequest, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


def _count_soon() -> None:
    """
    Figures never counted (a new installation): ask the worker to count them now rather than
    wait for beat's next refresh; once per few minutes, however often the page is opened.
    """
    if cache.add("dashboard:first-count-asked", True, timeout=settings.DASHBOARD_REFRESH_SECONDS):
        tasks.figures_refresh.delay()


def home(request: StaffRequest) -> HttpResponse:
    """The admin's home page: the panels this staff member may see (the model list is at /admin/models/)."""
    panels = selectors.dashboard(request.user)
    if any(panel.computed_at is None for panel in panels if panel.name != "privacy"):
        _count_soon()
    return TemplateResponse(
        request,
        "admin/dashboard/home.html",
        _context(
            request,
            "Dashboard",
            panels=panels,
            can_analyse=request.user.has_perm(ANALYSIS_PERMISSION),
            can_import=request.user.has_perm(IMPORT_PERMISSION),
        ),
    )


def models_index(request: HttpRequest) -> HttpResponse:
    """Django's list of models, as the admin's home page was before the dashboard."""
    return admin.site.index(request, extra_context={"title": "All models"})


def _analysis_tables(request: HttpRequest) -> list[analysis.Table]:
    if not request.user.has_perm(ANALYSIS_PERMISSION):
        raise PermissionDenied
    return analysis.analysis_tables()


def analysis_page(request: StaffRequest) -> HttpResponse:
    tables = _analysis_tables(request)
    access_log_record(
        staff_user=request.user,
        action=AccessLog.Action.LIST_EXPORTED,
        detail="Internal analysis page viewed (aggregates of consenting customers, small figures suppressed)",
    )
    shown = []
    for table in tables:
        if table.key == "by_country":
            chart = charts.bar_chart(
                table.title,
                labels=table.rows,
                series=table.series(),
                horizontal=True,
                label_header=table.row_header,
                height=90 + 26 * max(len(table.rows), 1),
            )
        else:
            chart = charts.bar_chart(
                table.title,
                labels=table.rows,
                series=table.series(),
                stacked=table.key != "by_reseller_currency",
                label_header=table.row_header,
            )
        rows = [[row, *(_shown(table.cell(row, column)) for column in table.columns)] for row in table.rows]
        shown.append({"table": table, "chart": chart, "rows": rows})
    return TemplateResponse(
        request,
        "admin/dashboard/analysis.html",
        _context(
            request,
            "Internal analysis: purchasing trends",
            tables=shown,
            minimum=analysis.minimum_cell(),
        ),
    )


def _shown(cell: analysis.Cell) -> str:
    return f"<{analysis.minimum_cell()}" if cell.suppressed else f"{cell.registrations:,}"


def analysis_download(request: StaffRequest) -> HttpResponse:
    tables = _analysis_tables(request)
    body = analysis.analysis_csv(tables)
    access_log_record(
        staff_user=request.user,
        action=AccessLog.Action.LIST_EXPORTED,
        detail="Internal analysis CSV downloaded (aggregates of consenting customers, small figures suppressed)",
    )
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="internal-analysis-{timezone.now():%Y%m%d-%H%M}.csv"'
    return response


# ---------------------------------------------------------------------------------------
# The import from the admin


@permission_required(IMPORT_PERMISSION, raise_exception=True)
def import_upload(request: StaffRequest) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = imports.import_check(
                data=upload.read(),
                file_name=upload.name,
                staff_user=request.user,
                update=form.cleaned_data["update"],
                clear_blank=form.cleaned_data["clear_blank"],
                evidence=form.cleaned_data["evidence"],
            )
        except ValidationError as refused:
            form.add_error(None, refused)
        else:
            return redirect("dashboard:import_job", public_id=job.public_id)
    recent = ImportJob.objects.select_related("uploaded_by").order_by("-uploaded_at", "-id")[:10]
    status = 400 if request.method == "POST" else 200
    return TemplateResponse(
        request,
        "admin/dashboard/import_upload.html",
        _context(request, "Import customers", form=form, recent=recent),
        status=status,
    )


def _job_for(request: HttpRequest, public_id) -> ImportJob:
    job = ImportJob.objects.select_related("uploaded_by").filter(public_id=public_id).first()
    if job is None:
        raise Http404("No such import.")
    if job.uploaded_by_id != request.user.pk and not request.user.has_perm("dashboard.view_importjob"):
        raise PermissionDenied
    return job


def import_job(request: HttpRequest, public_id) -> HttpResponse:
    job = _job_for(request, public_id)
    return TemplateResponse(
        request,
        "admin/dashboard/import_job.html",
        _context(
            request,
            f"Import of {job.file_name}",
            job=job,
            can_confirm=job.status == ImportJob.Status.CHECKED and job.uploaded_by_id == request.user.pk,
        ),
    )


def import_progress(request: HttpRequest, public_id) -> JsonResponse:
    job = _job_for(request, public_id)
    return JsonResponse(
        {
            "status": job.status,
            "status_label": job.get_status_display(),
            "step": job.step,
            "percent": job.percent,
            "finished": job.is_finished,
            "message": job.message,
        }
    )


@require_POST
@permission_required(IMPORT_PERMISSION, raise_exception=True)
def import_confirm(request: StaffRequest, public_id) -> HttpResponse:
    job = _job_for(request, public_id)
    try:
        imports.import_confirm(job=job, staff_user=request.user)
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
    else:
        messages.success(request, f"Import of {job.file_name} confirmed: a worker is writing it.")
    return redirect("dashboard:import_job", public_id=job.public_id)
