"""Route claims as rows with unique constraints (service.mesh.claims), and
revisions that store a delta with a whole manifest only at checkpoints
(service.mesh.revisions). Existing revisions keep their whole manifests, as
checkpoints; existing routes get the claim rows of what they serve."""
import django.db.models.deletion
from django.db import migrations, models


def claim_existing_routes(apps, schema_editor):
    Route = apps.get_model("mesh", "Route")
    HostnameClaim = apps.get_model("mesh", "HostnameClaim")
    PortClaim = apps.get_model("mesh", "PortClaim")
    hostnames, ports = [], []
    for route in Route.objects.prefetch_related("meshes"):
        for mesh in route.meshes.all():
            if route.type == "tcp":
                for port in {match["port"] for rule in route.rules for match in rule.get("matches", [])}:
                    ports.append(PortClaim(mesh=mesh, route=route, port=port))
            else:
                hostnames += [HostnameClaim(mesh=mesh, route=route, hostname=name) for name in route.hostnames]
    HostnameClaim.objects.bulk_create(hostnames, batch_size=1000)
    PortClaim.objects.bulk_create(ports, batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('mesh', '0002_initial'),
    ]

    operations = [
        migrations.RenameField(
            model_name='revision',
            old_name='manifest',
            new_name='checkpoint',
        ),
        migrations.AlterField(
            model_name='revision',
            name='checkpoint',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='revision',
            name='changes',
            field=models.JSONField(default=dict),
        ),
        migrations.CreateModel(
            name='HostnameClaim',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hostname', models.CharField(max_length=260)),
                ('mesh', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='mesh.mesh')),
                ('route', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='hostname_claims', to='mesh.route')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('mesh', 'hostname'), name='unique_hostname_claim')],
            },
        ),
        migrations.CreateModel(
            name='PortClaim',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('port', models.PositiveIntegerField()),
                ('mesh', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='mesh.mesh')),
                ('route', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='port_claims', to='mesh.route')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('mesh', 'port'), name='unique_port_claim')],
            },
        ),
        migrations.RunPython(claim_existing_routes, migrations.RunPython.noop),
    ]
