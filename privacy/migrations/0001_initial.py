"""The privacy app takes over five models from customers, keeping their tables and rows."""

import customers.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('customers', '0005_single_line_fields'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The tables stay where they are (db_table names them): only Django's idea of which
        # app owns the models moves. customers/0006 removes them from the customers app.
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='RetentionRun',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('cutoff', models.DateTimeField(help_text='Data recorded before this moment was cleared.')),
                    ('counts', models.JSONField(default=dict, help_text='Rows cleared per step.')),
                ],
                options={
                    'verbose_name': 'retention run',
                    'db_table': 'customers_retentionrun',
                    'ordering': ['-started_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='PrivacyRequest',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('kind', models.CharField(choices=[('access', 'Access (a copy of the data)'), ('correction', 'Correction'), ('erasure', 'Erasure')], max_length=20)),
                    ('channel', models.CharField(choices=[('preference_page', 'Preference page'), ('letter', 'Letter'), ('email', 'Email'), ('phone', 'Phone')], max_length=20, verbose_name='received through')),
                    ('details', models.TextField(blank=True, help_text='What the customer asked for.', validators=[customers.validators.reject_card_numbers])),
                    ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('due_at', models.DateTimeField(help_text='One month after receipt.', verbose_name='answer due')),
                    ('extended_due_at', models.DateTimeField(blank=True, help_text='At most two further months, once, with a reason.', null=True, verbose_name='extended due date')),
                    ('extension_reason', models.TextField(blank=True, validators=[customers.validators.reject_card_numbers])),
                    ('status', models.CharField(choices=[('open', 'Open'), ('done', 'Done'), ('refused', 'Refused')], default='open', max_length=10)),
                    ('refusal_reason', models.TextField(blank=True, validators=[customers.validators.reject_card_numbers])),
                    ('closed_at', models.DateTimeField(blank=True, null=True)),
                    ('customer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='privacy_requests', to='customers.customer')),
                    ('handled_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'verbose_name': 'privacy request',
                    'db_table': 'customers_privacyrequest',
                    'ordering': ['-received_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='CustomerErasure',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('address_hash', models.CharField(help_text='SHA-256 of the erased, normalised address.', max_length=64)),
                    ('erased_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('summary', models.JSONField(default=dict, help_text='What each part of the system redacted (counts).')),
                    ('customer', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='erasure', to='customers.customer')),
                    ('erased_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('privacy_request', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='erasures', to='privacy.privacyrequest')),
                ],
                options={
                    'verbose_name': 'erasure',
                    'db_table': 'customers_customererasure',
                    'ordering': ['-erased_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='RecipientNotification',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('reason', models.CharField(choices=[('correction', 'Correction'), ('erasure', 'Erasure')], max_length=20)),
                    ('fields', models.JSONField(blank=True, default=list, verbose_name='corrected fields')),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('notified_at', models.DateTimeField(blank=True, null=True)),
                    ('customer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='recipient_notifications', to='customers.customer')),
                    ('notified_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('third_party', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='notifications', to='customers.thirdparty')),
                ],
                options={
                    'verbose_name': 'third party to notify',
                    'verbose_name_plural': 'third parties to notify (Art. 19)',
                    'db_table': 'customers_recipientnotification',
                    'ordering': ['-created_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='AccessLog',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('action', models.CharField(choices=[('viewed', "Viewed the customer's page"), ('exported', "Downloaded the customer's data export"), ('erased', 'Erased the customer'), ('list_exported', 'Exported a list of customers')], max_length=20)),
                    ('detail', models.CharField(blank=True, max_length=300)),
                    ('at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('customer', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='access_logs', to='customers.customer')),
                    ('staff_user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'verbose_name': 'access log entry',
                    'verbose_name_plural': 'access log',
                    'db_table': 'customers_accesslog',
                    'ordering': ['-at', '-id'],
                    'indexes': [models.Index(fields=['customer', '-at'], name='access_log_by_customer'), models.Index(fields=['staff_user', '-at'], name='access_log_by_staff_user')],
                    'constraints': [models.CheckConstraint(condition=models.Q(('action', 'list_exported'), ('customer__isnull', False), _connector='OR'), name='access_log_names_customer')],
                },
            ),
            migrations.AddIndex(
                model_name='privacyrequest',
                index=models.Index(condition=models.Q(('status', 'open')), fields=['due_at'], name='privacy_request_open_by_due'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('customer', 'kind'), name='privacy_request_one_open_per_kind'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['access', 'correction', 'erasure'])), name='privacy_request_known_kind'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.CheckConstraint(condition=models.Q(('status__in', ['open', 'done', 'refused'])), name='privacy_request_known_status'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.CheckConstraint(condition=models.Q(('channel__in', ['preference_page', 'letter', 'email', 'phone'])), name='privacy_request_known_channel'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.CheckConstraint(condition=models.Q(('due_at__gt', models.F('received_at'))), name='privacy_request_due_after_receipt'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.CheckConstraint(condition=models.Q(('extended_due_at__isnull', True), models.Q(('extended_due_at__gt', models.F('due_at')), models.Q(('extension_reason', ''), _negated=True)), _connector='OR'), name='privacy_request_extension_later_with_reason'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'refused'), _negated=True), models.Q(('refusal_reason', ''), _negated=True), _connector='OR'), name='privacy_request_refusal_has_reason'),
            ),
            migrations.AddConstraint(
                model_name='privacyrequest',
                constraint=models.CheckConstraint(condition=models.Q(models.Q(('closed_at__isnull', True), ('status', 'open')), models.Q(models.Q(('status', 'open'), _negated=True), ('closed_at__isnull', False)), _connector='OR'), name='privacy_request_closed_when_not_open'),
            ),
            migrations.AddIndex(
                model_name='customererasure',
                index=models.Index(fields=['address_hash'], name='erasure_by_address_hash'),
            ),
            migrations.AddIndex(
                model_name='recipientnotification',
                index=models.Index(condition=models.Q(('notified_at', None)), fields=['created_at'], name='recipient_notification_open'),
            ),
            migrations.AddConstraint(
                model_name='recipientnotification',
                constraint=models.UniqueConstraint(condition=models.Q(('notified_at__isnull', True)), fields=('customer', 'third_party', 'reason'), name='recipient_notification_one_open'),
            ),
            migrations.AddConstraint(
                model_name='recipientnotification',
                constraint=models.CheckConstraint(condition=models.Q(('reason__in', ['correction', 'erasure'])), name='recipient_notification_known_reason'),
            ),
            migrations.AddConstraint(
                model_name='recipientnotification',
                constraint=models.CheckConstraint(condition=models.Q(models.Q(('notified_at__isnull', True), ('notified_by__isnull', True)), models.Q(('notified_at__isnull', False), ('notified_by__isnull', False)), _connector='OR'), name='recipient_notification_notified_names_who'),
            ),
            ],
            database_operations=[],
        ),
    ]
