"""Installs r1-interp from the metadata in settings.ini (the one place it is kept)."""
from configparser import ConfigParser
from pathlib import Path
import setuptools

here = Path(__file__).parent
cfg = ConfigParser(delimiters=['='])
cfg.read(here/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=(here/'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=cfg['license'],
    keywords=cfg['keywords'].split(),
    python_requires=f">={cfg['min_python']}",
    packages=setuptools.find_packages(include=[cfg['lib_name'], f"{cfg['lib_name']}.*"]),
    include_package_data=True,
    package_data={cfg['lib_name']: ['*.yaml', '*.json', 'templates/*', 'frontend/*', 'frontend/*/*', 'frontend/*/*/*'],
                  f"{cfg['lib_name']}.graphs": ['assets/*']},
    install_requires=cfg['requirements'].split(),
    extras_require={'dev': cfg['dev_requirements'].split(), 'lab': cfg['lab_requirements'].split()},
    entry_points={'console_scripts': cfg['console_scripts'].split()},
    zip_safe=False,
)
