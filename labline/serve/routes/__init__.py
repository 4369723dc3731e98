"""The service's endpoints, one router per concern: `info` (what is served, health, metrics),
`predict` (scoring; built per app, since its body types come from the data set's spec) and
`admin` (reload, behind the admin token). `labline.serve.app.create_app` includes them."""
