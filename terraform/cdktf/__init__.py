"""A CDKTF app that declares the example mesh through the Interlock provider."""
