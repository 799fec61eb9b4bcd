from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_aws_api_gateway_websockets", "0003_provisioning"),
    ]

    operations = [
        migrations.AddField(
            model_name="websockettoken",
            name="refusal_status",
            field=models.PositiveSmallIntegerField(
                blank=True, editable=False, null=True, verbose_name="refusal status"
            ),
        ),
        migrations.AddField(
            model_name="websockettoken",
            name="refusal_reason",
            field=models.CharField(
                blank=True, editable=False, max_length=200, verbose_name="refusal reason"
            ),
        ),
    ]
