from tests.workers.probing_stand_in import install_unless_present

install_unless_present()
