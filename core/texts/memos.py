"""Default care memos (before / after a procedure) and the default service catalogue.

Wording is deliberately conservative: general advice a clinic gives every patient, the
doctor's own instructions first, and every memo ends by asking the patient to call the
clinic if something goes wrong. A clinic edits any memo (template kind `memo.<code>`) or adds
its own, and points its services at them (`memo_before`, `memo_after`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Memo:
    code: str
    about: str
    text: dict[str, str]


_CALL = {
    "ru": "Если что-то вас беспокоит (сильная боль, кровотечение, отёк, температура), звоните нам: {phone}.",
    "uk": "Якщо щось вас турбує (сильний біль, кровотеча, набряк, температура), телефонуйте нам: {phone}.",
    "en": "If anything worries you (severe pain, bleeding, swelling, fever), call us: {phone}.",
}


def _memo(code: str, about: str, ru: str, uk: str, en: str) -> Memo:
    return Memo(code, about, {lang: f"{t}\n{_CALL[lang]}" for lang, t in (("ru", ru), ("uk", uk), ("en", en))})


MEMOS: list[Memo] = [
    _memo(
        "anaesthesia_before",
        "before general anaesthesia or sedation",
        "Перед наркозом (седацией): не ешьте 6 часов и не пейте 2 часа до визита (если врач не сказал иначе). "
        "Приходите со взрослым сопровождающим, который отвезёт вас домой. Сообщите врачу обо всех лекарствах, "
        "которые принимаете, и о самочувствии в день визита (простуда, температура).",
        "Перед наркозом (седацією): не їжте 6 годин і не пийте 2 години до візиту (якщо лікар не сказав інакше). "
        "Приходьте з дорослим супровідником, який відвезе вас додому. Повідомте лікаря про всі ліки, "
        "які приймаєте, і про самопочуття в день візиту (застуда, температура).",
        "Before anaesthesia or sedation: do not eat for 6 hours or drink for 2 hours before the visit "
        "(unless the doctor told you otherwise). Come with an adult who can take you home. Tell the doctor "
        "about every medicine you take and how you feel that day (a cold, a fever).",
    ),
    _memo(
        "anaesthesia_after",
        "after general anaesthesia or sedation",
        "После наркоза (седации): отдыхайте до конца дня, не садитесь за руль и не работайте с механизмами "
        "24 часа, не принимайте алкоголь. Начинайте с воды и лёгкой еды.",
        "Після наркозу (седації): відпочивайте до кінця дня, не сідайте за кермо і не працюйте з механізмами "
        "24 години, не вживайте алкоголь. Починайте з води та легкої їжі.",
        "After anaesthesia or sedation: rest for the rest of the day, do not drive or operate machinery "
        "for 24 hours, no alcohol. Start with water and light food.",
    ),
    _memo(
        "implantation_before",
        "before implant placement",
        "Перед имплантацией: хорошо выспитесь и легко поешьте, не употребляйте алкоголь 24 часа. "
        "Принимайте обычные лекарства, если врач не сказал иначе, и возьмите их список с собой. "
        "Если врач назначил препараты перед операцией, примите их по схеме.",
        "Перед імплантацією: добре виспіться і легко поїжте, не вживайте алкоголь 24 години. "
        "Приймайте звичні ліки, якщо лікар не сказав інакше, і візьміть їх перелік із собою. "
        "Якщо лікар призначив препарати перед операцією, прийміть їх за схемою.",
        "Before implant placement: sleep well and have a light meal, no alcohol for 24 hours. "
        "Take your usual medicines unless the doctor said otherwise, and bring a list of them. "
        "If the doctor prescribed something before the surgery, take it as prescribed.",
    ),
    _memo(
        "implantation_after",
        "after implant placement",
        "После имплантации: прикладывайте холод к щеке по 15 минут с перерывами в первые часы. "
        "Сегодня не ешьте горячего, не полощите рот активно, не курите. Жуйте на другой стороне. "
        "Принимайте назначенные врачом препараты.",
        "Після імплантації: прикладайте холод до щоки по 15 хвилин з перервами в перші години. "
        "Сьогодні не їжте гарячого, не полощіть рот активно, не паліть. Жуйте на іншому боці. "
        "Приймайте призначені лікарем препарати.",
        "After implant placement: hold something cold to the cheek, 15 minutes on and off, for the first "
        "hours. Today no hot food, no vigorous rinsing, no smoking. Chew on the other side. "
        "Take the medicines the doctor prescribed.",
    ),
    _memo(
        "surgery_before",
        "before a surgical procedure (extraction, sinus lift, bone graft)",
        "Перед операцией: легко поешьте за 1–2 часа, не употребляйте алкоголь 24 часа. "
        "Скажите врачу, если принимаете препараты, влияющие на свёртываемость крови, или плохо себя чувствуете.",
        "Перед операцією: легко поїжте за 1–2 години, не вживайте алкоголь 24 години. "
        "Скажіть лікарю, якщо приймаєте препарати, що впливають на згортання крові, або погано почуваєтеся.",
        "Before the procedure: have a light meal 1–2 hours before, no alcohol for 24 hours. "
        "Tell the doctor if you take blood-thinning medicines or feel unwell.",
    ),
    _memo(
        "extraction_after",
        "after a tooth extraction",
        "После удаления зуба: держите марлевый тампон 20–30 минут, не ешьте 2 часа. Сегодня не полощите рот, "
        "не пейте горячего, не трогайте лунку языком, не курите. Холод к щеке по 15 минут.",
        "Після видалення зуба: тримайте марлевий тампон 20–30 хвилин, не їжте 2 години. Сьогодні не полощіть "
        "рот, не пийте гарячого, не торкайтеся лунки язиком, не паліть. Холод до щоки по 15 хвилин.",
        "After an extraction: keep the gauze in for 20–30 minutes, do not eat for 2 hours. Today do not rinse, "
        "no hot drinks, do not touch the socket with your tongue, no smoking. Cold to the cheek, 15 minutes at a time.",
    ),
    _memo(
        "wisdom_extraction_after",
        "after a wisdom tooth extraction",
        "После удаления зуба мудрости: тампон 20–30 минут, не ешьте 2 часа, холод к щеке по 15 минут с "
        "перерывами в первый день. Отёк и ограниченное открывание рта 2–3 дня возможны. Мягкая прохладная "
        "пища, без полосканий и курения, принимайте назначенные препараты.",
        "Після видалення зуба мудрості: тампон 20–30 хвилин, не їжте 2 години, холод до щоки по 15 хвилин з "
        "перервами в перший день. Набряк і обмежене відкривання рота 2–3 дні можливі. М'яка прохолодна "
        "їжа, без полоскань і паління, приймайте призначені препарати.",
        "After a wisdom tooth extraction: gauze for 20–30 minutes, no food for 2 hours, cold to the cheek "
        "15 minutes on and off on the first day. Some swelling and stiffness for 2–3 days can happen. Soft, "
        "cool food, no rinsing or smoking, take the medicines prescribed.",
    ),
    _memo(
        "sinus_lift_after",
        "after a sinus lift",
        "После синус-лифтинга: 2 недели не сморкайтесь, чихайте с открытым ртом, не летайте самолётом, "
        "не ныряйте, не посещайте баню и сауну. Холод к щеке в первый день, назначенные препараты по схеме.",
        "Після синус-ліфтингу: 2 тижні не сякайтеся, чхайте з відкритим ротом, не літайте літаком, "
        "не пірнайте, не відвідуйте лазню та сауну. Холод до щоки в перший день, призначені препарати за схемою.",
        "After a sinus lift: for 2 weeks do not blow your nose, sneeze with your mouth open, do not fly, "
        "dive or use a sauna. Cold to the cheek on the first day, the prescribed medicines as directed.",
    ),
    _memo(
        "bone_graft_after",
        "after a bone graft",
        "После костной пластики: не жуйте на стороне операции, мягкая пища, без горячего 2–3 дня. "
        "Не полощите рот активно, не курите, не трогайте швы. Холод к щеке в первый день, "
        "принимайте назначенные препараты.",
        "Після кісткової пластики: не жуйте на боці операції, м'яка їжа, без гарячого 2–3 дні. "
        "Не полощіть рот активно, не паліть, не торкайтеся швів. Холод до щоки в перший день, "
        "приймайте призначені препарати.",
        "After a bone graft: do not chew on that side, soft food, nothing hot for 2–3 days. "
        "No vigorous rinsing, no smoking, do not touch the stitches. Cold to the cheek on the first day, "
        "take the prescribed medicines.",
    ),
    _memo(
        "root_canal_after",
        "after root canal treatment",
        "После лечения каналов: не ешьте, пока не пройдёт онемение. Не жуйте твёрдое на этой стороне до "
        "постоянной пломбы или коронки. Лёгкая чувствительность 2–3 дня бывает и проходит.",
        "Після лікування каналів: не їжте, доки не мине оніміння. Не жуйте тверде на цьому боці до "
        "постійної пломби чи коронки. Легка чутливість 2–3 дні буває і минає.",
        "After root canal treatment: do not eat until the numbness wears off. Do not chew hard food on that "
        "side until the permanent filling or crown. Mild tenderness for 2–3 days is common and passes.",
    ),
    _memo(
        "filling_after",
        "after a filling",
        "После пломбирования: не ешьте, пока не пройдёт онемение (можно прикусить щёку). "
        "Если пломба мешает при смыкании зубов, скажите нам, врач её подправит.",
        "Після пломбування: не їжте, доки не мине оніміння (можна прикусити щоку). "
        "Якщо пломба заважає при змиканні зубів, скажіть нам, лікар її підправить.",
        "After a filling: do not eat until the numbness wears off (you could bite your cheek). "
        "If the filling feels high when you bite, tell us and the doctor will adjust it.",
    ),
    _memo(
        "hygiene_after",
        "after professional hygiene",
        "После профессиональной гигиены: 2 часа не ешьте и не курите, сутки избегайте красящих продуктов "
        "и напитков (кофе, чай, вино). Небольшая чувствительность дёсен проходит за несколько дней.",
        "Після професійної гігієни: 2 години не їжте і не паліть, добу уникайте продуктів і напоїв, "
        "що фарбують (кава, чай, вино). Невелика чутливість ясен минає за кілька днів.",
        "After professional hygiene: do not eat or smoke for 2 hours, avoid staining food and drinks "
        "(coffee, tea, wine) for a day. Slight gum sensitivity passes in a few days.",
    ),
    _memo(
        "whitening_after",
        "after whitening",
        "После отбеливания: 48 часов «белая диета», без кофе, чая, красного вина, ягод и курения. "
        "Чувствительность зубов в первые дни возможна, пользуйтесь пастой для чувствительных зубов.",
        "Після відбілювання: 48 годин «біла дієта», без кави, чаю, червоного вина, ягід і паління. "
        "Чутливість зубів у перші дні можлива, користуйтеся пастою для чутливих зубів.",
        "After whitening: a 'white diet' for 48 hours, no coffee, tea, red wine, berries or smoking. "
        "Some sensitivity in the first days can happen; use a toothpaste for sensitive teeth.",
    ),
    _memo(
        "braces_after",
        "after braces are fitted",
        "После установки брекетов: несколько дней зубы могут ныть, ешьте мягкую пищу. Избегайте твёрдого, "
        "липкого (орехи, ириски, жвачка). Чистите зубы после каждой еды ёршиком и щёткой. Если "
        "дужка колет, закройте её ортодонтическим воском.",
        "Після встановлення брекетів: кілька днів зуби можуть нити, їжте м'яку їжу. Уникайте твердого, "
        "липкого (горіхи, ірис, жуйка). Чистіть зуби після кожного прийому їжі йоржиком і щіткою. Якщо "
        "дуга коле, закрийте її ортодонтичним воском.",
        "After braces are fitted: teeth may ache for a few days, eat soft food. Avoid hard and sticky food "
        "(nuts, toffee, chewing gum). Brush after every meal with a brush and an interdental brush. If a wire "
        "pokes, cover it with orthodontic wax.",
    ),
    _memo(
        "aligners_after",
        "after aligners are fitted",
        "Элайнеры: носите их 20–22 часа в сутки, снимайте только для еды и чистки зубов. Пейте в них только "
        "воду. Первые дни возможно давление на зубы, это нормально. Меняйте капы по графику врача.",
        "Елайнери: носіть їх 20–22 години на добу, знімайте лише для їжі та чищення зубів. Пийте в них лише "
        "воду. Перші дні можливий тиск на зуби, це нормально. Міняйте капи за графіком лікаря.",
        "Aligners: wear them 20–22 hours a day, take them out only to eat and brush. Drink only water while "
        "wearing them. Some pressure in the first days is normal. Change trays on the doctor's schedule.",
    ),
    _memo(
        "crown_after",
        "after a crown or veneer is fitted",
        "После фиксации коронки или виниров: не ешьте 2 часа, сутки не жуйте твёрдое и липкое на этой стороне. "
        "Не грызите орехи, лёд и ручки. Если коронка мешает при смыкании или шатается, скажите нам.",
        "Після фіксації коронки чи вінірів: не їжте 2 години, добу не жуйте тверде та липке на цьому боці. "
        "Не гризіть горіхи, лід і ручки. Якщо коронка заважає при змиканні чи хитається, скажіть нам.",
        "After a crown or veneers are fitted: do not eat for 2 hours; for a day avoid hard and sticky food on "
        "that side. Do not bite nuts, ice or pens. If it feels high or loose, tell us.",
    ),
    _memo(
        "dentures_after",
        "after dentures are fitted",
        "Новый протез: первые дни возможны натёртости и обильное слюноотделение. Начинайте с мягкой пищи "
        "мелкими кусочками. Снимайте и чистите протез после еды, на ночь, если врач так сказал. "
        "Натёртость не подгибайте сами: приходите на коррекцию.",
        "Новий протез: перші дні можливі натертості та рясне слиновиділення. Починайте з м'якої їжі "
        "дрібними шматочками. Знімайте і чистіть протез після їжі, на ніч, якщо лікар так сказав. "
        "Натертість не виправляйте самі: приходьте на корекцію.",
        "New dentures: sore spots and extra saliva in the first days can happen. Start with soft food in "
        "small pieces. Take them out and clean them after meals, and at night if the doctor said so. "
        "Do not adjust them yourself: come in for a correction.",
    ),
    _memo(
        "child_first_visit_before",
        "before a child's first visit",
        "Первый визит ребёнка: приходите за 10 минут, возьмите любимую игрушку. Расскажите о визите спокойно, "
        "без слов «больно» и «укол». Накормите ребёнка за 1–2 часа до визита. Возьмите медицинские "
        "документы, если есть.",
        "Перший візит дитини: приходьте за 10 хвилин, візьміть улюблену іграшку. Розкажіть про візит спокійно, "
        "без слів «боляче» і «укол». Нагодуйте дитину за 1–2 години до візиту. Візьміть медичні "
        "документи, якщо є.",
        "A child's first visit: come 10 minutes early and bring a favourite toy. Talk about the visit calmly, "
        "without words like 'hurt' or 'injection'. Feed the child 1–2 hours before. Bring medical records "
        "if you have them.",
    ),
]
DEFAULT_MEMOS: dict[str, Memo] = {m.code: m for m in MEMOS}


@dataclass(frozen=True)
class ServiceDef:
    """A built-in catalogue entry: its names in every language (any of them matches)."""

    code: str
    names: dict[str, list[str]]
    specialty: str
    duration_minutes: int
    memo_before: str | None = None
    memo_after: str | None = None
    extra_aliases: list[str] = field(default_factory=list)


DEFAULT_SERVICES: list[ServiceDef] = [
    ServiceDef(
        "consultation",
        {"ru": ["Консультация"], "uk": ["Консультація"], "en": ["Consultation", "Check-up"]},
        "therapy",
        30,
    ),
    ServiceDef(
        "general_anaesthesia",
        {"ru": ["Лечение под наркозом", "Наркоз"], "uk": ["Лікування під наркозом", "Наркоз"],
         "en": ["Treatment under general anaesthesia", "General anaesthesia", "Anaesthesia", "Anesthesia"]},
        "anaesthesiology", 120, "anaesthesia_before", "anaesthesia_after",
    ),
    ServiceDef(
        "sedation",
        {"ru": ["Лечение во сне", "Седация"], "uk": ["Лікування уві сні", "Седація"], "en": ["Sedation"]},
        "anaesthesiology", 90, "anaesthesia_before", "anaesthesia_after",
    ),
    ServiceDef(
        "implantation",
        {"ru": ["Имплантация", "Установка импланта"], "uk": ["Імплантація", "Встановлення імплантата"],
         "en": ["Implant placement", "Implantation", "Dental implant"]},
        "implantology", 90, "implantation_before", "implantation_after",
    ),
    ServiceDef(
        "extraction",
        {"ru": ["Удаление зуба"], "uk": ["Видалення зуба"], "en": ["Tooth extraction", "Extraction"]},
        "surgery", 45, "surgery_before", "extraction_after",
    ),
    ServiceDef(
        "wisdom_extraction",
        {"ru": ["Удаление зуба мудрости"], "uk": ["Видалення зуба мудрості"], "en": ["Wisdom tooth extraction"]},
        "surgery", 60, "surgery_before", "wisdom_extraction_after",
    ),
    ServiceDef(
        "sinus_lift",
        {"ru": ["Синус-лифтинг", "Синус-лифт"], "uk": ["Синус-ліфтинг", "Синус-ліфт"], "en": ["Sinus lift"]},
        "implantology", 90, "surgery_before", "sinus_lift_after",
    ),
    ServiceDef(
        "bone_graft",
        {"ru": ["Костная пластика", "Наращивание кости"], "uk": ["Кісткова пластика", "Нарощування кістки"],
         "en": ["Bone graft", "Bone grafting"]},
        "implantology", 90, "surgery_before", "bone_graft_after",
    ),
    ServiceDef(
        "root_canal",
        {"ru": ["Лечение каналов", "Эндодонтическое лечение"], "uk": ["Лікування каналів", "Ендодонтичне лікування"],
         "en": ["Root canal treatment", "Root canal"]},
        "therapy", 90, None, "root_canal_after",
    ),
    ServiceDef(
        "filling",
        {"ru": ["Пломбирование", "Лечение кариеса", "Пломба"], "uk": ["Пломбування", "Лікування карієсу", "Пломба"],
         "en": ["Filling", "Caries treatment"]},
        "therapy", 60, None, "filling_after",
    ),
    ServiceDef(
        "hygiene",
        {"ru": ["Профессиональная гигиена", "Чистка зубов"], "uk": ["Професійна гігієна", "Чистка зубів"],
         "en": ["Professional hygiene", "Hygiene", "Teeth cleaning"]},
        "hygiene", 60, None, "hygiene_after",
    ),
    ServiceDef(
        "whitening",
        {"ru": ["Отбеливание зубов", "Отбеливание"], "uk": ["Відбілювання зубів", "Відбілювання"],
         "en": ["Teeth whitening", "Whitening"]},
        "hygiene", 90, None, "whitening_after",
    ),
    ServiceDef(
        "braces",
        {"ru": ["Установка брекетов", "Брекеты"], "uk": ["Встановлення брекетів", "Брекети"],
         "en": ["Braces fitting", "Braces"]},
        "orthodontics", 120, None, "braces_after",
    ),
    ServiceDef(
        "aligners",
        {"ru": ["Выдача элайнеров", "Элайнеры"], "uk": ["Видача елайнерів", "Елайнери"],
         "en": ["Aligners fitting", "Aligners"]},
        "orthodontics", 45, None, "aligners_after",
    ),
    ServiceDef(
        "crown",
        {"ru": ["Фиксация коронки", "Коронка"], "uk": ["Фіксація коронки", "Коронка"],
         "en": ["Crown fitting", "Crown"]},
        "orthopedics", 60, None, "crown_after",
    ),
    ServiceDef(
        "veneers",
        {"ru": ["Фиксация виниров", "Виниры"], "uk": ["Фіксація вінірів", "Вініри"],
         "en": ["Veneer fitting", "Veneers"]},
        "orthopedics", 90, None, "crown_after",
    ),
    ServiceDef(
        "dentures",
        {"ru": ["Сдача протеза", "Протезирование", "Съёмный протез"], "uk": ["Здача протеза", "Протезування",
         "Знімний протез"], "en": ["Dentures fitting", "Dentures"]},
        "orthopedics", 60, None, "dentures_after",
    ),
    ServiceDef(
        "child_first_visit",
        {"ru": ["Первый визит ребёнка", "Детский приём"], "uk": ["Перший візит дитини", "Дитячий прийом"],
         "en": ["Child's first visit", "Children's first visit"]},
        "pediatric", 30, "child_first_visit_before", None,
    ),
]  # fmt: skip
DEFAULT_SERVICES_BY_CODE = {s.code: s for s in DEFAULT_SERVICES}
