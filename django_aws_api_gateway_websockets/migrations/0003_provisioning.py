from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_aws_api_gateway_websockets", "0002_session_state_token_audience"),
    ]

    operations = [
        migrations.AddField(
            model_name="apigateway",
            name="aws_resources",
            field=models.JSONField(
                blank=True,
                default=dict,
                editable=False,
                help_text="Ids of what provisioning created, by resource (teardown removes exactly these).",
                verbose_name="AWS resources",
            ),
        ),
    ]
